# The two Quickstart commands of README.md:
#   make demo   install, then run the main job on the bundled real sample data (CPU, local Ray, local MLflow)
#   make test   install, then run the test suite (what .ci/run calls)
PYTHON ?= python3
VENV   ?= .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.aircolor-installed
DEMO   ?= runs/demo
SAMPLE := aircolor/sample_data
# Massachusetts tiles are cut from 10 source images (<image id>_15_y<row>_x<col>.jpg): keep each image's tiles in
# one split. Kampala tiles are neighbours at zoom 21: keep blocks of about 10x10 tiles together.
GROUP_BY := (\d+)_15_|OAM-(\d{6})\d-(\d{6})\d

.PHONY: install demo test clean

install: $(STAMP)

$(STAMP): pyproject.toml
	@$(PYTHON) -c 'import sys; sys.exit(0 if sys.version_info >= (3, 10) else "aircolor needs Python >= 3.10, found " + sys.version.split()[0])'
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[dev]'
	touch $(STAMP)

demo: install
	$(BIN)/aircolor data prepare $(SAMPLE)/color $(DEMO)/data --historical $(SAMPLE)/historical \
		--size 256 --split 0.7,0.15,0.15 --seed 0 --group-by '$(GROUP_BY)'
	$(BIN)/aircolor config show aircolor/configs/demo_cpu.yaml data.root=$(DEMO)/data --out $(DEMO)/config.yaml
	@echo "demo: datasets in $(DEMO)/data (manifest.parquet, summary.json), resolved config in $(DEMO)/config.yaml"

test: install
	$(BIN)/python -m pytest

clean:
	rm -rf $(DEMO) build dist *.egg-info
