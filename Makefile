# Two commands for a fresh machine: `make demo` and `make test`.
# Both first make the virtual environment and install what is missing.

PYTHON ?= python3
VENV   := .venv
PY     := $(VENV)/bin/python
STAMP  := $(VENV)/.installed

# command:Debian package, installed when the command is missing.
SYSTEM_DEPS := mosquitto:mosquitto mosquitto_pub:mosquitto-clients espeak-ng:espeak-ng openssl:openssl chromium:chromium sqlite3:sqlite3 systemd-analyze:systemd

SUDO := $(shell [ "$$(id -u)" = 0 ] || echo sudo)

.PHONY: demo test bench system-deps lint clean

demo: $(STAMP)
	$(VENV)/bin/nextup demo

test: $(STAMP)
	$(PY) -m pytest $(PYTEST_ARGS)

bench: $(STAMP)
	$(PY) -m bench

lint: $(STAMP)
	$(VENV)/bin/ruff check nextup central edge tests bench

system-deps:
	@missing=""; for pair in $(SYSTEM_DEPS); do \
	  command -v "$${pair%%:*}" >/dev/null 2>&1 || missing="$$missing $${pair#*:}"; \
	done; \
	if [ -n "$$missing" ]; then \
	  echo "installing Debian packages:$$missing"; \
	  $(SUDO) apt-get update && DEBIAN_FRONTEND=noninteractive $(SUDO) apt-get install -y $$missing; \
	fi

$(STAMP): pyproject.toml | system-deps
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -e '.[dev]'
	touch $@

clean:
	rm -rf $(VENV) build *.egg-info .pytest_cache
