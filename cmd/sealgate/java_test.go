package main

import (
	"archive/zip"
	"bytes"
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/sealgate/sealgate/devsetup"
	"github.com/sealgate/sealgate/internal/loopback"
	"github.com/sealgate/sealgate/internal/pdftest"
	"github.com/sealgate/sealgate/signing/signingtest"
)

// javaExample is the REST client example the README documents.
const javaExample = "../../examples/java/SealgateClient.java"

// javaRun is one run of the Java example.
type javaRun struct {
	out  string
	code int
}

// line returns the submatches of the first output line re matches, or
// fails the test.
func (r javaRun) line(t *testing.T, re string) []string {
	t.Helper()
	m := regexp.MustCompile("(?m)^" + re + "$").FindStringSubmatch(r.out)
	if m == nil {
		t.Fatalf("no line matching %q in the example's output:\n%s", re, r.out)
	}
	return m
}

// compileJavaExample compiles the example with javac into a temporary
// directory. A missing JDK fails the test: make deps-test installs
// default-jdk-headless, so its absence is a broken setup, not a skip.
func compileJavaExample(t *testing.T) string {
	t.Helper()
	for _, tool := range []string{"javac", "java"} {
		if _, err := exec.LookPath(tool); err != nil {
			t.Fatalf("%s not found: the Java client example needs a JDK 17 (apt-get install default-jdk-headless; make deps-test installs it)", tool)
		}
	}
	classes := t.TempDir()
	if out, err := exec.Command("javac", "-Xlint:all", "-Werror", "-d", classes, javaExample).CombinedOutput(); err != nil {
		t.Fatalf("javac %s: %v\n%s", javaExample, err, out)
	}
	return classes
}

// runJavaExample runs the compiled example with env added to the test's
// environment.
func runJavaExample(t *testing.T, classes string, env []string, args ...string) javaRun {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, "java", append([]string{"-cp", classes, "SealgateClient"}, args...)...)
	cmd.Env = append(os.Environ(), env...)
	out, err := cmd.CombinedOutput()
	r := javaRun{out: string(out)}
	if ee, ok := err.(*exec.ExitError); ok {
		r.code = ee.ExitCode()
	} else if err != nil {
		t.Fatalf("java SealgateClient: %v\n%s", err, out)
	}
	if ctx.Err() != nil {
		t.Fatalf("java SealgateClient did not finish within 3 minutes:\n%s", out)
	}
	return r
}

// TestJavaClientExample compiles examples/java/SealgateClient.java with
// javac and runs it with java, as the development process client, against
// `sealgate serve` on a fresh data directory: it gets a token, seals a PDF,
// runs a job of three documents to its end, downloads the results and
// verifies them. Its output is checked line by line and its files by the
// independent verifiers. Public verification is limited to one per two
// seconds, so the example's back-to-back verifications get 429 with
// Retry-After, which it must honour. Failures (a wrong secret, a file that
// is not a PDF, no credentials) exit non-zero with the problem's code and
// never print the secret.
func TestJavaClientExample(t *testing.T) {
	sealgateBinary(t)
	classes := compileJavaExample(t)

	data := filepath.Join(t.TempDir(), "data")
	var stderr bytes.Buffer
	runner(t, data, &stderr)("init")
	cfg := devsetup.Layout{Dir: data}.Config()
	f, err := os.OpenFile(cfg, os.O_APPEND|os.O_WRONLY, 0)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := f.WriteString("verify:\n  perSource:\n    rate: 0.5\n    burst: 1\n"); err != nil {
		t.Fatal(err)
	}
	if err := f.Close(); err != nil {
		t.Fatal(err)
	}
	d := startServe(t, data, loopback.FreeAddr(t))
	c := readCredentials(t, data)

	work := t.TempDir()
	var files []string
	for _, name := range []string{"invoice-1.pdf", "invoice-2.pdf", "invoice-3.pdf"} {
		doc := pdftest.Bytes(pdftest.Spec{Pages: []pdftest.Page{{Text: "Invoice " + name}}})
		files = append(files, signingtest.WriteFile(t, work, name, doc))
	}
	env := []string{"SEALGATE_URL=" + d.url, "SEALGATE_CLIENT_ID=" + c.ClientID, "SEALGATE_CLIENT_SECRET=" + c.ClientSecret}

	t.Run("seal, job, results, verification", func(t *testing.T) {
		out := filepath.Join(work, "out")
		r := runJavaExample(t, classes, env, append([]string{"--out", out}, files...)...)
		if r.code != 0 {
			t.Fatalf("exit status %d:\n%s\nserver:\n%s", r.code, r.out, d.output)
		}
		if strings.Contains(r.out, c.ClientSecret) {
			t.Errorf("the output holds the client secret:\n%s", r.out)
		}
		r.line(t, `token: ok, Bearer, expires in \d+ s`)

		sealed := r.line(t, `seal: `+regexp.QuoteMeta(files[0])+` -> (\S+) \(\d+ bytes, level B-T, event \w+, evidence index \d+\)`)[1]
		b, err := os.ReadFile(sealed)
		if err != nil {
			t.Fatal(err)
		}
		signingtest.CheckIndependently(t, b, 1)
		r.line(t, `verify: invoice-1-sealed\.pdf valid \(.+\)`)

		id := r.line(t, `job: (\S+) accepted at /api/v1/jobs/\S+, 3 documents, state \w+`)[1]
		r.line(t, `job: `+regexp.QuoteMeta(id)+` done \(3 documents: 3 done, 0 failed, 0 running, 0 queued\)`)

		zipPath := r.line(t, `zip: (\S+) \(\d+ bytes\)`)[1]
		r.line(t, `zip: 3 entries`)
		z, err := zip.OpenReader(zipPath)
		if err != nil {
			t.Fatal(err)
		}
		defer z.Close()
		if len(z.File) != 3 {
			t.Fatalf("the ZIP holds %d entries, want 3", len(z.File))
		}
		for _, zf := range z.File {
			rc, err := zf.Open()
			if err != nil {
				t.Fatal(err)
			}
			var buf bytes.Buffer
			_, err = buf.ReadFrom(rc)
			rc.Close()
			if err != nil {
				t.Fatal(err)
			}
			signingtest.CheckIndependently(t, buf.Bytes(), 1)
		}
		r.line(t, `document: 1 sha256 [0-9a-f]{64} \(event \w+, evidence index \d+\) matches its ZIP entry`)
		verified := regexp.MustCompile(`(?m)^verify: .+ valid \(.+\)$`).FindAllString(r.out, -1)
		if len(verified) != 4 {
			t.Errorf("%d verifications reported valid, want 4 (the sealed PDF and 3 results):\n%s", len(verified), r.out)
		}
		retry := r.line(t, `retry: POST /api/v1/verifications: HTTP 429 verification_rate_limited: .+; again in (\d+) s`)
		if n, _ := strconv.Atoi(retry[1]); n < 1 || n > 2 {
			t.Errorf("the example waited %s s, want the server's Retry-After of 1 or 2 s", retry[1])
		}
		r.line(t, `job: `+regexp.QuoteMeta(id)+` deleted \(HTTP 2\d\d\)`)
		if lines := strings.Split(strings.TrimSpace(r.out), "\n"); lines[len(lines)-1] != "OK" {
			t.Errorf("the last line is %q, want OK", lines[len(lines)-1])
		}
	})

	for _, tc := range []struct {
		name string
		env  []string
		args []string
		code int
		want string
	}{
		{"wrong secret", []string{"SEALGATE_CLIENT_SECRET=not-" + c.ClientSecret}, files[:1], 1,
			`FAILED: POST /api/v1/oauth/token: HTTP 401 invalid_client: client authentication failed`},
		{"not a PDF", nil, []string{cfg}, 1,
			`FAILED: POST /api/v1/seals: HTTP 400 pdf_malformed: .+`},
		{"no credentials", []string{"SEALGATE_CLIENT_ID=", "SEALGATE_CLIENT_SECRET="}, files[:1], 2,
			`error: the client id and secret are needed .+`},
		{"no server", []string{"SEALGATE_URL=http://" + loopback.FreeAddr(t)}, files[:1], 1,
			`FAILED: cannot connect to http://127\.0\.0\.1:\d+/: ConnectException`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r := runJavaExample(t, classes, append(append([]string{}, env...), tc.env...), append([]string{"--out", t.TempDir()}, tc.args...)...)
			if r.code != tc.code {
				t.Errorf("exit status %d, want %d:\n%s", r.code, tc.code, r.out)
			}
			r.line(t, tc.want)
			if strings.Contains(r.out, c.ClientSecret) {
				t.Errorf("the output holds the client secret:\n%s", r.out)
			}
		})
	}
}
