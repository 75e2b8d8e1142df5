// Command sealbench drives a running sealgate node with seal requests
// (POST /api/v1/seals) at given concurrencies, and measures in the same run
// what any signer of the same document on the same token is bound by: hashing
// the document plus one raw signature (the hash-and-sign floor). Every rate
// is printed beside the floor, as a ratio, because absolute figures differ
// from machine to machine and from run to run.
//
//	sealbench -url http://127.0.0.1:8080 -data ./data -doc invoice.pdf -format pades -c 4,16,64
//
// It sends traffic to loopback addresses only, runs bounded steps and stops
// by itself.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"net/url"
	"os"
	"os/signal"
	"strconv"
	"strings"
	"time"
)

// options are sealbench's flags.
type options struct {
	URL          string
	Data         string
	ClientID     string
	ClientSecret string
	Doc          string
	Format       string
	Level        string
	Concurrency  []int
	Duration     time.Duration
	Warmup       time.Duration
	// Overload adds, after the steps, one at 4× the best concurrency and
	// one paced at half the best rate.
	Overload bool
	// Soak runs at the best concurrency for this long, reporting the
	// server's RSS (PID) after the first minute and at the end.
	Soak time.Duration
	PID  int
	// Floor measures the token and the hash-and-sign floor (needs Data).
	Floor bool
	// Pdfsign compares with digitorus/pdfsign signing the same PDF in process.
	Pdfsign bool
	// Job, when positive, submits one batch job of that many copies of the
	// document and compares its documents/s with the best single-request
	// rate (with the node's peak RSS during the job, given PID).
	Job int
}

func main() {
	opts, err := parseFlags(os.Args[1:], os.Stderr)
	if err != nil {
		if errors.Is(err, flag.ErrHelp) {
			os.Exit(0)
		}
		fmt.Fprintln(os.Stderr, "sealbench:", err)
		os.Exit(2)
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt)
	defer stop()
	if err := run(ctx, opts, os.Stdout); err != nil {
		fmt.Fprintln(os.Stderr, "sealbench:", err)
		os.Exit(1)
	}
}

func parseFlags(args []string, errOut io.Writer) (options, error) {
	var o options
	fs := flag.NewFlagSet("sealbench", flag.ContinueOnError)
	fs.SetOutput(errOut)
	fs.StringVar(&o.URL, "url", "http://127.0.0.1:8080", "the node's base URL (loopback only)")
	fs.StringVar(&o.Data, "data", "", "the node's data directory: credentials from dev-credentials.json, the seal's token for the floor")
	fs.StringVar(&o.ClientID, "id", "", "process client id (default from the data directory)")
	fs.StringVar(&o.ClientSecret, "secret-env", "", "name of an environment variable holding the client secret (default from the data directory)")
	fs.StringVar(&o.Doc, "doc", "", "the document to seal (required)")
	fs.StringVar(&o.Format, "format", "cades", "pades or cades")
	fs.StringVar(&o.Level, "level", "", "B-B, B-T, B-LT or B-LTA (default the node's: B-T with a TSA)")
	conc := fs.String("c", "4,16,64", "concurrencies, comma-separated")
	fs.DurationVar(&o.Duration, "d", 5*time.Second, "measured duration of each step")
	fs.DurationVar(&o.Warmup, "warmup", time.Second, "unmeasured load before each step")
	fs.BoolVar(&o.Overload, "overload", true, "also run 4× the best concurrency and half the best rate")
	fs.DurationVar(&o.Soak, "soak", 0, "also run this long at the best concurrency, with the node's RSS (needs -pid)")
	fs.IntVar(&o.PID, "pid", 0, "the node's process id, for its resident memory")
	fs.BoolVar(&o.Floor, "floor", true, "measure the raw token rate and the hash-and-sign floor (needs -data)")
	fs.BoolVar(&o.Pdfsign, "pdfsign", false, "compare with digitorus/pdfsign signing the PDF in process with the same key (pades)")
	fs.IntVar(&o.Job, "job", 0, "also seal one batch job of this many copies of the document (POST /api/v1/jobs)")
	if err := fs.Parse(args); err != nil {
		return o, err
	}
	if fs.NArg() > 0 {
		return o, fmt.Errorf("unexpected arguments %q", fs.Args())
	}
	for _, f := range strings.Split(*conc, ",") {
		n, err := strconv.Atoi(strings.TrimSpace(f))
		if err != nil || n < 1 || n > 4096 {
			return o, fmt.Errorf("-c: %q is not a concurrency between 1 and 4096", f)
		}
		o.Concurrency = append(o.Concurrency, n)
	}
	switch {
	case o.Doc == "":
		return o, errors.New("-doc is required")
	case o.Format != "pades" && o.Format != "cades":
		return o, fmt.Errorf("-format %q: use pades or cades", o.Format)
	case o.Duration <= 0 || o.Duration > 30*time.Minute || o.Warmup < 0 || o.Soak < 0 || o.Soak > time.Hour:
		return o, errors.New("-d must be between 0 and 30m, -warmup not negative, -soak at most 1h")
	case o.Soak > 0 && o.PID == 0:
		return o, errors.New("-soak needs -pid (the node whose memory to watch)")
	case (o.Floor || o.Pdfsign) && o.Data == "":
		return o, errors.New("-floor and -pdfsign need -data (the node's data directory); use -floor=false without it")
	case o.Job < 0 || o.Job > 10000:
		return o, errors.New("-job must be between 0 and 10000 documents")
	case o.Pdfsign && o.Format != "pades":
		return o, errors.New("-pdfsign compares PAdES only")
	}
	if o.Secret() == "" && o.ClientSecret != "" {
		return o, fmt.Errorf("-secret-env: $%s is empty", o.ClientSecret)
	}
	return o, checkLoopback(o.URL)
}

// Secret is the client secret named by -secret-env, if any.
func (o options) Secret() string {
	if o.ClientSecret == "" {
		return ""
	}
	return os.Getenv(o.ClientSecret)
}

// checkLoopback refuses any target but this machine: a load test sends
// traffic nowhere else.
func checkLoopback(raw string) error {
	u, err := url.Parse(raw)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") {
		return fmt.Errorf("-url %q is not an http(s) URL", raw)
	}
	host := u.Hostname()
	if host == "localhost" {
		return nil
	}
	if ip := net.ParseIP(host); ip != nil && ip.IsLoopback() {
		return nil
	}
	return fmt.Errorf("-url %q: sealbench only loads loopback addresses (127.0.0.0/8, ::1, localhost)", raw)
}
