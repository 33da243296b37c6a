package metrics

import dto "github.com/prometheus/client_model/go"

// dtoMetric wraps the protobuf metric a collector writes itself into.
type dtoMetric struct{ dto.Metric }
