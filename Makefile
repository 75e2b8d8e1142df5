# sealgate — build, run, test, benchmark.
GO        ?= go
BIN       := bin/sealgate
DATA      ?= ./data
export CGO_ENABLED := 1

.PHONY: run build test bench bench-http generate check deps-run deps-test

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

# The Go files are git's when this is a checkout, else every one under here
# (a source archive); none found is an error, never a silent pass.
check:
	@files=$$(git ls-files '*.go' 2>/dev/null) || files=$$(find . -name '*.go' -not -path './data/*'); \
	if [ -z "$$files" ]; then echo "no Go files found to check"; exit 1; fi; \
	out=$$(gofmt -l $$files); if [ -n "$$out" ]; then echo "gofmt needed:"; echo "$$out"; exit 1; fi
	$(GO) vet ./...

# What the tests run for real: SoftHSM, OpenLDAP, the independent validators,
# xmlsec1 (it signs the tests' trusted lists), Chromium (for the PDF corpus),
# the SOAP clients (python3-zeep, JAX-WS) and a JDK (javac and java run the
# JAX-WS client and the Java REST client example).
# Installed through apt when missing.
TEST_PKGS := softhsm2 opensc openssl slapd ldap-utils poppler-utils qpdf libnss3-tools chromium fonts-dejavu-core fonts-ipafont-gothic zbar-tools xmlsec1 python3-zeep jaxws default-jdk-headless
deps-test:
	@missing=$$(for p in $(TEST_PKGS); do dpkg -s $$p >/dev/null 2>&1 || echo $$p; done); \
	if [ -n "$$missing" ]; then \
	  echo "installing what the tests use:" $$missing; \
	  (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends $$missing) || \
	  { echo "could not install" $$missing "- install them with apt-get (as root)"; exit 1; }; \
	fi

test: deps-test check
	$(GO) test -race -count=1 -timeout 20m ./...

# Benchmarks of every area on this machine (a few minutes). The RSS
# benchmarks run in their own processes: peak RSS is per process.
BENCH = $(GO) test -run '^$$' -benchmem
bench:
	$(BENCH) -bench 'SigningRawSoftHSM|SigningPool' -benchtime 3s ./signing/pkcs11/
	$(BENCH) -bench 'SigningCSC' -benchtime 3s ./signing/csc/
	$(BENCH) -bench 'SigningCAdES100KB' -benchtime 3s ./signing/cms/
	$(BENCH) -bench 'SigningPAdES100KB|SigningPAdESVsToken|SigningPdfsign100KB' -benchtime 3s ./signing/pades/
	$(BENCH) -bench 'SigningCAdES1GBRSS' -benchtime 1x ./signing/cms/
	$(BENCH) -bench 'SigningPAdES200MBRSS' -benchtime 1x ./signing/pades/
	$(BENCH) -bench 'Seal[^S]|SealService' -benchtime 3s ./server/
	$(BENCH) -bench 'SealSOAPVsREST' -benchtime 5s ./server/
	$(BENCH) -bench 'SealSOAPMTOM100MBRSS' -benchtime 1x ./server/
	$(BENCH) -bench 'Job' -benchtime 5x ./server/
	$(BENCH) -bench 'Evidence' ./evidence/
	$(BENCH) -bench 'AccessDecide' -benchtime 50000x ./access/
	$(BENCH) -bench 'AccessLogin' -benchtime 20x ./access/
	$(BENCH) -bench 'LDAP' -benchtime 3x ./ldapsync/
	$(BENCH) -bench 'TSA' -benchtime 2s ./tsa/
	$(MAKE) bench-http

# Seals over HTTP against a fresh node on a free loopback port (about two
# minutes): sealbench prints seals/s and latencies beside the hash-and-sign
# floor of the same run. SEALBENCH_ARGS adds flags, e.g. SEALBENCH_ARGS="-soak 3m".
bench-http: deps-test build
	$(GO) build -o bin/sealbench ./cmd/sealbench
	BIN_DIR=bin sh cmd/sealbench/bench.sh

generate:
	$(GO) generate ./...
