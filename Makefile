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
SWEEP  := demo-pix2pix-generator-$(shell date +%Y%m%d-%H%M%S)

.PHONY: install system-deps demo test clean

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
	@# Inception weights: $$AIRCOLOR_INCEPTION_WEIGHTS if set; else torch-fidelity's download when the internet is
	@# reachable; else (offline) a random weights file, so the demo still runs: its FID/IS/KID are then tagged
	@# non-standard and only the paired metrics (PSNR, SSIM, Delta E) say anything about color.
	@if [ -z "$$AIRCOLOR_INCEPTION_WEIGHTS" ] && ! $(BIN)/python -c 'import urllib.request as u; u.urlopen("https://github.com", timeout=5)' 2>/dev/null; then \
		echo "demo: no internet and no AIRCOLOR_INCEPTION_WEIGHTS: using RANDOM Inception weights (metrics tagged non-standard)"; \
		$(BIN)/python -c 'from aircolor.metrics.weights import make_random_weights as m; m("$(DEMO)/inception-random.pth")'; \
		echo "metrics.inception_weights=$(abspath $(DEMO))/inception-random.pth" > $(DEMO)/weights.arg; \
	else echo "" > $(DEMO)/weights.arg; fi
	$(BIN)/aircolor train aircolor/configs/demo_cpu.yaml data.root=$(DEMO)/data train.output_dir=$(DEMO)/runs \
		tracking.tracking_uri=sqlite:///$(abspath $(DEMO))/mlruns.db $$(cat $(DEMO)/weights.arg) --ray --workers 1
	@# A real small sweep: factor 2 (U-Net vs ResNet) x 2 seeds, smoke sizes, on a local Ray, same MLflow store.
	@# With random Inception weights FID cannot judge color, so the sweep optimises Delta E 2000 then.
	@grep -q inception-random $(DEMO)/weights.arg && echo "demo: random Inception weights, so the sweep optimises Delta E 2000 (paired) instead of FID" || true
	$(BIN)/aircolor sweep run search_spaces/pix2pix_generator.yaml data.root=$(abspath $(DEMO))/data \
		$$(cat $(DEMO)/weights.arg) --smoke --storage $(DEMO)/sweeps --name $(SWEEP) \
		--tracking-uri sqlite:///$(abspath $(DEMO))/mlruns.db --cpus-per-trial 1 --scheduler none \
		$$(grep -q inception-random $(DEMO)/weights.arg && echo --metric delta_e2000)
	@# The ranked comparison report of that sweep (HTML + Markdown + figures + Parquet tables).
	$(BIN)/aircolor report --experiment $(SWEEP) --tracking-uri sqlite:///$(abspath $(DEMO))/mlruns.db \
		--out $(DEMO)/reports/$(SWEEP) $$(grep -q inception-random $(DEMO)/weights.arg && echo --metric delta_e2000)
	@# Register the sweep's best trial in the model registry (a 2-epoch smoke model: it is not used to colour).
	$(BIN)/aircolor sweep promote $(SWEEP) --storage $(DEMO)/sweeps
	@# Learn the colours of a place from today's imagery of it: adapt the default model to 70% of the bundled
	@# Massachusetts tiles (spatial blocks; at half resolution, as it was trained) and print its scores on the
	@# other 30% beside the unadapted model, the gray copy and the place's priors. Then colorize the 1936-1942
	@# photos with it on a local Ray (--ray: the command that colorizes an archive on a cluster).
	$(BIN)/aircolor adapt --modern $(SAMPLE)/color/massachusetts_1m --scale 0.5 --holdout 0.3 --minutes 2 \
		--out $(DEMO)/adapted/massachusetts --force --tracking-uri sqlite:///$(abspath $(DEMO))/mlruns.db
	@$(BIN)/python -c 'import json, sys; t = json.load(open("$(DEMO)/adapted/massachusetts/adapt.json"))["test"]; \
		d, g = t["delivered"]["delta_e2000"], t["gray"]["delta_e2000"]; \
		print("demo: the adapted model " + ("beats" if d < g else "does NOT beat") + f" the gray copy on the held-out tiles ({d:.2f} vs {g:.2f})")'
	$(BIN)/aircolor colorize --model $(DEMO)/adapted/massachusetts --scale 0.5 \
		$(SAMPLE)/historical/gsi_1936-1942_z18 --out $(DEMO)/colorized/adapted --quiet --ray --overwrite
	@echo "demo: datasets in $(DEMO)/data; run folders in $(DEMO)/runs; sweeps in $(DEMO)/sweeps. Watch them with:"
	@echo "  $(BIN)/mlflow ui --backend-store-uri sqlite:///$(abspath $(DEMO))/mlruns.db"
	@echo "demo: the adapted model and its card: $(abspath $(DEMO))/adapted/massachusetts/MODEL_CARD.md"
	@echo "demo: the historical photos colorized by it: $(abspath $(DEMO))/colorized/adapted/"
	@echo "demo: the sweep's comparison report: $(abspath $(DEMO))/reports/$(SWEEP)/index.html"

# Headless Chromium (Debian's package) for the browser checks of the MLflow UI and the report, and PostgreSQL
# (initdb, pg_ctl: the tests start a throwaway server as a tracking store) when they are missing.
PG_FOUND = command -v initdb >/dev/null 2>&1 || ls /usr/lib/postgresql/*/bin/initdb >/dev/null 2>&1
system-deps:
	@missing=""; command -v chromium >/dev/null 2>&1 || missing="chromium"; \
	{ $(PG_FOUND); } || missing="$$missing postgresql"; \
	if [ -n "$$missing" ]; then \
		if [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null; then \
			apt-get update -q && DEBIAN_FRONTEND=noninteractive apt-get install -y -q $$missing; \
		else echo "note: install$$missing (e.g. sudo apt-get install$$missing) for the browser and PostgreSQL tests"; fi; fi

test: install system-deps
	$(BIN)/python -m pytest --durations=15

clean:
	rm -rf $(DEMO) build dist *.egg-info
