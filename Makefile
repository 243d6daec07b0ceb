.PHONY: install test lint smoke figures gpu-check
install:  # CPU-only torch (README, Quick start); for CUDA install torch first and run the second half
	pip install "torch==2.13.0" --index-url https://download.pytorch.org/whl/cpu && pip install -e ".[test]"
test:
	python -m pytest -n 2
lint:
	ruff check .
smoke:
	python -m experiments reproduce --smoke
figures:
	python -m experiments reproduce
gpu-check:
	bash .ci/gpu
