.PHONY: install test lint smoke figures
install:
	pip install "torch==2.13.0" && pip install -e ".[test]"
test:
	python -m pytest -n 2
lint:
	ruff check .
smoke:
	python -m experiments reproduce --smoke
figures:
	python -m experiments reproduce
