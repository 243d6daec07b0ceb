"""The parts of :mod:`experiments.blundell_mnist` (Blundell et al. 2015, MNIST; also used by
:mod:`experiments.blundell_pruning`) outside its config and run: plain-torch prediction from a
guide's or a net's weights (:mod:`.prediction`) and its figures (:mod:`.figures`)."""
