package server

import (
	"context"
	"net/http"
	"slices"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/sealgate/sealgate/access"
	"github.com/sealgate/sealgate/fault"
	"github.com/sealgate/sealgate/gateway/problem"
	"github.com/sealgate/sealgate/seal"
)

// MetricsSettings is the "metrics" section of sealgate.yaml.
type MetricsSettings struct {
	// Listen is an address (such as 127.0.0.1:9090) that serves /metrics,
	// the detailed /readyz and /healthz to whoever reaches it, for a
	// Prometheus on the host or a management network. Default: none; on
	// the main listener both need the admin or auditor role.
	Listen string `yaml:"listen"`
}

// monitor authenticates r and asks Decide whether the caller may see the
// node's metrics and details (the admin and auditor roles); anonymous
// tells a caller without credentials, who is refused, from a wrong one.
func (s *Server) monitor(r *http.Request) (anonymous bool, err error) {
	p, err := s.auth.Authenticate(r)
	if err != nil {
		return false, err
	}
	_, err = s.Access.Decide(r.Context(), p, access.Action{Operation: access.OpMonitor})
	return p.Kind == access.KindAnonymous, err
}

// monitoring serves h to callers with the admin or auditor role only.
func (s *Server) monitoring(h http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if _, err := s.monitor(r); err != nil {
			problem.Write(w, r, s.log, err)
			return
		}
		h.ServeHTTP(w, r)
	})
}

// monitorHandler serves the metrics listener: everything it answers is
// for operators, so nothing there asks for credentials.
func (s *Server) monitorHandler() http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("GET /healthz", healthz)
	mux.HandleFunc("GET /readyz", func(w http.ResponseWriter, _ *http.Request) { s.readyDetails(w) })
	mux.Handle("GET /metrics", s.metrics.handler())
	return s.http.guardBodies(mux, s.log)
}

// metrics holds the node's Prometheus registry. Request metrics are fed by
// seal.Service's Observe hook; card, seal and log state is read at scrape
// time, so it is never stale.
type metrics struct {
	reg      *prometheus.Registry
	seals    *prometheus.CounterVec
	duration *prometheus.HistogramVec
	codes    codeLabels
	// jobDocuments and jobDuration are fed by seal.Jobs' hooks.
	jobDocuments *prometheus.CounterVec
	jobDuration  *prometheus.HistogramVec
}

func newMetrics(s *Server) *metrics {
	m := &metrics{
		codes: codeLabels{seen: map[fault.Code]bool{}},
		reg:   prometheus.NewRegistry(),
		seals: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "sealgate_seal_requests_total",
			Help: "Seal requests by format (pades, cades, other), outcome (sealed, failed) and error code.",
		}, []string{"format", "outcome", "code"}),
		duration: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name:    "sealgate_seal_duration_seconds",
			Help:    "Time to seal one document, from request to durable evidence.",
			Buckets: prometheus.ExponentialBuckets(0.001, 2, 16),
		}, []string{"format"}),
		jobDocuments: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "sealgate_job_documents_total",
			Help: "Documents of batch jobs that ended, by outcome (done, failed, cancelled).",
		}, []string{"outcome"}),
		jobDuration: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name:    "sealgate_job_duration_seconds",
			Help:    "Time from a job's submission to its end, by the state it ended in (done, failed, cancelled).",
			Buckets: prometheus.ExponentialBuckets(0.1, 2, 16),
		}, []string{"state"}),
	}
	m.reg.MustRegister(m.seals, m.duration, m.jobDocuments, m.jobDuration, &stateCollector{s: s},
		collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	return m
}

// observe is seal.Options.Observe. Label values are only values sealgate
// knows: a caller's format that is not one becomes "other", so no request
// can add series.
func (m *metrics) observe(f seal.Format, outcome string, code fault.Code, took time.Duration) {
	format := labelOf(string(f), string(seal.PAdES), string(seal.CAdES))
	m.seals.WithLabelValues(format, labelOf(outcome, "sealed", "failed"), m.codes.label(code)).Inc()
	if outcome == "sealed" {
		m.duration.WithLabelValues(format).Observe(took.Seconds())
	}
}

// observeJobDocument is seal.JobsOptions.ObserveDocument.
func (m *metrics) observeJobDocument(state seal.JobState) {
	m.jobDocuments.WithLabelValues(string(state)).Inc()
}

// observeJob is seal.JobsOptions.ObserveJob.
func (m *metrics) observeJob(state seal.JobState, took time.Duration) {
	m.jobDuration.WithLabelValues(string(state)).Observe(took.Seconds())
}

// labelOf returns v when it is one of known, else "other".
func labelOf(v string, known ...string) string {
	if slices.Contains(known, v) {
		return v
	}
	return "other"
}

// maxCodeLabels bounds the distinct error codes counted apart. Codes are
// sealgate's own constants, far fewer than this; the bound keeps the
// series finite even if a code ever carried outside input.
const maxCodeLabels = 200

// codeLabels hands out error codes as label values, up to maxCodeLabels.
type codeLabels struct {
	mu   sync.Mutex
	seen map[fault.Code]bool
}

func (c *codeLabels) label(code fault.Code) string {
	c.mu.Lock()
	defer c.mu.Unlock()
	if !c.seen[code] {
		if len(c.seen) >= maxCodeLabels {
			return "other"
		}
		c.seen[code] = true
	}
	return string(code)
}

func (m *metrics) handler() http.Handler {
	return promhttp.HandlerFor(m.reg, promhttp.HandlerOpts{})
}

var (
	descCardUp = prometheus.NewDesc("sealgate_card_up",
		"1 when the card (token) is in service.", []string{"module", "token"}, nil)
	descCardSignatures = prometheus.NewDesc("sealgate_card_signatures_total",
		"Signatures made on the card since start.", []string{"module", "token"}, nil)
	descCardSessions = prometheus.NewDesc("sealgate_card_sessions_in_use",
		"Sessions of the card busy signing.", []string{"module", "token"}, nil)
	descSealCards = prometheus.NewDesc("sealgate_seal_healthy_cards",
		"Cards in service holding the seal's key.", []string{"seal"}, nil)
	descSealExpiry = prometheus.NewDesc("sealgate_seal_certificate_expiry_timestamp_seconds",
		"When the seal certificate expires (Unix time).", []string{"seal"}, nil)
	descSealInProgress = prometheus.NewDesc("sealgate_seal_in_progress",
		"Single seal requests holding a turn (seal.queue), by seal.", []string{"seal"}, nil)
	descSealWaiting = prometheus.NewDesc("sealgate_seal_waiting",
		"Single seal requests waiting for a turn (seal.queue), by seal.", []string{"seal"}, nil)
	descLogSize = prometheus.NewDesc("sealgate_evidence_leaves",
		"Leaves in the evidence log.", nil, nil)
	descJobDocuments = prometheus.NewDesc("sealgate_job_documents",
		"Documents of the jobs kept, by state; queued is the queue's depth.", []string{"state"}, nil)
	descJobs = prometheus.NewDesc("sealgate_jobs",
		"Jobs kept, by state.", []string{"state"}, nil)
)

// jobStates are the states job gauges report, present or not.
var jobStates = []seal.JobState{seal.JobQueued, seal.JobRunning, seal.JobDone, seal.JobFailed, seal.JobCancelled}

// stateCollector reports the pool's cards and seals and the log's size.
type stateCollector struct{ s *Server }

func (c *stateCollector) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range []*prometheus.Desc{descCardUp, descCardSignatures, descCardSessions, descSealCards, descSealExpiry, descSealInProgress, descSealWaiting, descLogSize, descJobDocuments, descJobs} {
		ch <- d
	}
}

func (c *stateCollector) Collect(ch chan<- prometheus.Metric) {
	for _, card := range c.s.Pool.Status() {
		up := 0.0
		if card.Healthy {
			up = 1
		}
		ch <- prometheus.MustNewConstMetric(descCardUp, prometheus.GaugeValue, up, card.Module, card.Token)
		ch <- prometheus.MustNewConstMetric(descCardSignatures, prometheus.CounterValue, float64(card.Signatures), card.Module, card.Token)
		ch <- prometheus.MustNewConstMetric(descCardSessions, prometheus.GaugeValue, float64(card.SessionsInUse), card.Module, card.Token)
	}
	for _, st := range c.s.Pool.Seals() {
		ch <- prometheus.MustNewConstMetric(descSealCards, prometheus.GaugeValue, float64(st.HealthyCards), st.ID)
		ch <- prometheus.MustNewConstMetric(descSealExpiry, prometheus.GaugeValue, float64(st.NotAfter.Unix()), st.ID)
		running, waiting := c.s.Seal.Load(st.ID)
		ch <- prometheus.MustNewConstMetric(descSealInProgress, prometheus.GaugeValue, float64(running), st.ID)
		ch <- prometheus.MustNewConstMetric(descSealWaiting, prometheus.GaugeValue, float64(waiting), st.ID)
	}
	ch <- prometheus.MustNewConstMetric(descLogSize, prometheus.GaugeValue, float64(c.s.Evidence.Size()))
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	st, err := c.s.Jobs.Stats(ctx)
	if err != nil {
		c.s.log.Warn("job figures not read for metrics", "err", err)
		return
	}
	for _, state := range jobStates {
		ch <- prometheus.MustNewConstMetric(descJobDocuments, prometheus.GaugeValue, float64(st.Documents[state]), string(state))
		ch <- prometheus.MustNewConstMetric(descJobs, prometheus.GaugeValue, float64(st.Jobs[state]), string(state))
	}
}
