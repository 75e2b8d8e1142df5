package server

import (
	"net/http"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/sealgate/sealgate/fault"
	"github.com/sealgate/sealgate/seal"
)

// metrics holds the node's Prometheus registry. Request metrics are fed by
// seal.Service's Observe hook; card, seal and log state is read at scrape
// time, so it is never stale.
type metrics struct {
	reg      *prometheus.Registry
	seals    *prometheus.CounterVec
	duration *prometheus.HistogramVec
}

func newMetrics(s *Server) *metrics {
	m := &metrics{
		reg: prometheus.NewRegistry(),
		seals: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "sealgate_seal_requests_total",
			Help: "Seal requests by format, outcome (sealed, failed) and error code.",
		}, []string{"format", "outcome", "code"}),
		duration: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name:    "sealgate_seal_duration_seconds",
			Help:    "Time to seal one document, from request to durable evidence.",
			Buckets: prometheus.ExponentialBuckets(0.001, 2, 16),
		}, []string{"format"}),
	}
	m.reg.MustRegister(m.seals, m.duration, &stateCollector{s: s},
		collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	return m
}

// observe is seal.Options.Observe.
func (m *metrics) observe(f seal.Format, outcome string, code fault.Code, took time.Duration) {
	m.seals.WithLabelValues(string(f), outcome, string(code)).Inc()
	if outcome == "sealed" {
		m.duration.WithLabelValues(string(f)).Observe(took.Seconds())
	}
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
	descLogSize = prometheus.NewDesc("sealgate_evidence_leaves",
		"Leaves in the evidence log.", nil, nil)
)

// stateCollector reports the pool's cards and seals and the log's size.
type stateCollector struct{ s *Server }

func (c *stateCollector) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range []*prometheus.Desc{descCardUp, descCardSignatures, descCardSessions, descSealCards, descSealExpiry, descLogSize} {
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
	}
	ch <- prometheus.MustNewConstMetric(descLogSize, prometheus.GaugeValue, float64(c.s.Evidence.Size()))
}
