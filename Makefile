# sealgate — build, run, test, benchmark.
GO        ?= go
BIN       := bin/sealgate
DATA      ?= ./data
export CGO_ENABLED := 1

.PHONY: run build test bench generate check deps-run

build:
	$(GO) build -o $(BIN) ./cmd/sealgate

# Runs sealgate with development defaults in $(DATA): a SQLite database, a
# development CA and seal (key in SoftHSM when available), a development TSA.
run: deps-run build
	$(BIN) serve --data $(DATA)

# SoftHSM keeps the development seal key in a PKCS#11 token; without it
# sealgate falls back to a software key and says so.
deps-run:
	@command -v softhsm2-util >/dev/null 2>&1 || { \
	  echo "installing softhsm2 + opensc for the development seal card"; \
	  (apt-get install -y --no-install-recommends softhsm2 opensc >/dev/null 2>&1 || \
	   (apt-get update -qq && apt-get install -y --no-install-recommends softhsm2 opensc >/dev/null 2>&1)) || \
	  echo "could not install softhsm2: the development seal will use a software key"; }

check:
	@out=$$(gofmt -l $$(git ls-files '*.go')); if [ -n "$$out" ]; then echo "gofmt needed:"; echo "$$out"; exit 1; fi
	$(GO) vet ./...

test: check
	$(GO) test -count=1 -timeout 20m ./...

# Benchmarks of every area on this machine (a few minutes). The RSS
# benchmarks run in their own processes: peak RSS is per process.
BENCH = $(GO) test -run '^$$' -benchmem
bench:
	$(BENCH) -bench 'SigningRawSoftHSM|SigningPool' -benchtime 3s ./signing/
	$(BENCH) -bench 'SigningCAdES100KB|SigningPAdES100KB|SigningPdfsign100KB' -benchtime 3s ./signing/
	$(BENCH) -bench 'SigningCAdES1GBRSS' -benchtime 1x ./signing/
	$(BENCH) -bench 'SigningPAdES200MBRSS' -benchtime 1x ./signing/
	$(BENCH) -bench 'Seal' -benchtime 3s ./server/
	$(BENCH) -bench 'Evidence' ./evidence/
	$(BENCH) -bench 'AccessDecide' -benchtime 50000x ./access/
	$(BENCH) -bench 'AccessLogin' -benchtime 20x ./access/
	$(BENCH) -bench 'LDAP' -benchtime 3x ./ldapsync/
	$(BENCH) -bench 'TSA' -benchtime 2s ./tsa/

generate:
	$(GO) generate ./...
