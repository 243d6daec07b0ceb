"""The command-line harness: run folders and logs (:mod:`.runner`), the typed path from ``--set``
to ``fit`` (:mod:`.spec`), the ``run``, ``reproduce`` and ``report`` commands (:mod:`.run_commands`; one
run into its folder: :mod:`.running`), the report, the table commands (``fit``, ``predict``,
``compare``), plotting, and what the VAE experiments share.

The CLI itself is ``python -m experiments`` (:mod:`experiments.__main__`).
"""
