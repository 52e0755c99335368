package serve

import (
	"encoding/json"
	"math"
	"testing"
	"time"

	"github.com/minint/minint/internal/progress"
)

// FuzzRow: whatever a machine posts (events that passed the handler's
// check, machine headers), applying it never panics and the row stays
// sane: progress, rate and time left are never negative or NaN, and the
// state is one the dashboard knows.
func FuzzRow(f *testing.F) {
	f.Add(`{"event":"sequence","state":"start","msg":"s","data":{"steps":5}}`, `{"event":"progress","op":"apply","state":"running","done":10,"total":100,"time":"2026-12-02T10:00:05Z"}`, "id=SN1&mac=52%3A54")
	f.Add(`{"event":"step","state":"failed","op":"fetch","error":"404","data":{"index":"x","count":1e300}}`, `{"event":"progress","op":"apply","done":-5,"total":-1,"time":"1900-01-01T00:00:00Z"}`, "id=a&id=b")
	f.Add(`{"event":"progress","op":"a","done":100}`, `{"event":"progress","op":"a","done":-9223372036854775807,"total":9223372036854775807}`, "id=o")
	f.Add(`{"event":"inventory","data":{"serial":5,"model":null}}`, `{"event":"pe","state":"done"}`, "%zz")
	f.Fuzz(func(t *testing.T, e1, e2, header string) {
		m, err := progress.ParseMachine(header)
		if err != nil || m.ID == "" {
			m = progress.Machine{ID: "x"}
		}
		var r Row
		at := time.Date(2026, 12, 2, 10, 0, 0, 0, time.UTC)
		for i, e := range []string{e1, e2, e1, e2} {
			var k struct {
				Kind *string `json:"event"`
			}
			if json.Unmarshal([]byte(e), &k) != nil || k.Kind == nil {
				continue // refused by postEvents
			}
			r.apply(record{At: at.Add(time.Duration(i) * time.Second), Machine: m, Event: json.RawMessage(e)})
		}
		for _, v := range []float64{r.Rate, r.ETA} {
			if v < 0 || math.IsNaN(v) || math.IsInf(v, 0) {
				t.Fatalf("rate %v, eta %v", r.Rate, r.ETA)
			}
		}
		if _, ok := stateOrder[r.State]; !ok {
			t.Fatalf("state %q", r.State)
		}
		if _, err := json.Marshal(r); err != nil {
			t.Fatalf("row does not marshal: %v", err)
		}
	})
}
