package ordered

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"runtime"
	"sync"
	"sync/atomic"
	"testing"
	"testing/synctest"
)

// The tests run inside synctest bubbles: synctest.Test fails if a goroutine
// the pipeline started is still alive (blocked) when the test returns, so
// every case also checks that nothing leaks.

// account checks that every produced item is consumed or discarded exactly
// once and that no more than the window is in flight.
type account struct {
	mu        sync.Mutex
	state     map[int]string
	inFlight  int
	maxFlight int
}

func newAccount() *account { return &account{state: map[int]string{}} }

func (a *account) produced(i int) {
	a.mu.Lock()
	defer a.mu.Unlock()
	a.state[i] = "produced"
	a.inFlight++
	a.maxFlight = max(a.maxFlight, a.inFlight)
}

func (a *account) finish(t *testing.T, i int, how string) {
	a.mu.Lock()
	defer a.mu.Unlock()
	if a.state[i] != "produced" {
		t.Errorf("item %d %s, but it was %q", i, how, a.state[i])
	}
	a.state[i] = how
	a.inFlight--
}

func (a *account) check(t *testing.T, n, window int) {
	t.Helper()
	for i := range n {
		if s := a.state[i]; s == "produced" {
			t.Errorf("item %d was produced but neither consumed nor discarded", i)
		}
	}
	// The window, plus the item the consumer holds and the one being
	// emitted.
	if a.maxFlight > window+2 {
		t.Errorf("%d items in flight, window %d", a.maxFlight, window)
	}
}

// spin does a little CPU work so that workers finish out of order.
func spin(r int) {
	for range r {
		runtime.Gosched()
	}
}

type run struct {
	n, workers, window int
	failWork           map[int]error // Work fails on these items
	failConsume        int           // Consume fails on this item (-1: never)
	failProduce        int           // Produce fails after emitting this many (-1: never)
}

func (c run) do(t *testing.T, ctx context.Context, onConsume func(i int)) ([]int, *account, error) {
	acc := newAccount()
	var got []int
	seed := rand.Uint64()
	var worked atomic.Int64
	err := Run(ctx, Stages[int]{
		Workers: c.workers,
		Window:  c.window,
		Produce: func(ctx context.Context, emit func(int) error) error {
			for i := range c.n {
				if i == c.failProduce {
					return fmt.Errorf("produce failed at %d", i)
				}
				acc.produced(i)
				if err := emit(i); err != nil {
					return err
				}
			}
			return nil
		},
		Work: func(w int, i int) error {
			if w < 0 || w >= max(c.workers, 1) {
				t.Errorf("worker number %d out of range", w)
			}
			worked.Add(1)
			spin(int((seed + uint64(i)*7919) % 13))
			return c.failWork[i]
		},
		Consume: func(i int) error {
			acc.finish(t, i, "consumed")
			got = append(got, i)
			if onConsume != nil {
				onConsume(i)
			}
			if i == c.failConsume {
				return fmt.Errorf("consume failed at %d", i)
			}
			return nil
		},
		Discard: func(i int) { acc.finish(t, i, "discarded") },
	})
	return got, acc, err
}

func TestOrder(t *testing.T) {
	for _, workers := range []int{1, 2, 7} {
		for _, window := range []int{1, 3, 64} {
			synctest.Test(t, func(t *testing.T) {
				c := run{n: 500, workers: workers, window: window, failConsume: -1, failProduce: -1}
				got, acc, err := c.do(t, t.Context(), nil)
				if err != nil {
					t.Fatal(err)
				}
				if len(got) != c.n {
					t.Fatalf("%d items consumed, want %d", len(got), c.n)
				}
				for i, v := range got {
					if v != i {
						t.Fatalf("workers %d window %d: item %d consumed at position %d", workers, window, v, i)
					}
				}
				acc.check(t, c.n, window)
			})
		}
	}
}

// TestWorkError: the error of the earliest failing item wins, whatever
// order the workers fail in, and everything before it is consumed.
func TestWorkError(t *testing.T) {
	for range 20 {
		synctest.Test(t, func(t *testing.T) {
			first := errors.New("first")
			c := run{n: 300, workers: 4, window: 8, failConsume: -1, failProduce: -1,
				failWork: map[int]error{120: first, 121: errors.New("later"), 125: errors.New("later still")}}
			got, acc, err := c.do(t, t.Context(), nil)
			if err != first {
				t.Fatalf("error %v, want the earliest item's", err)
			}
			if len(got) != 120 || got[119] != 119 {
				t.Fatalf("consumed %d items, want exactly those before the failure", len(got))
			}
			acc.check(t, c.n, c.window)
		})
	}
}

func TestConsumeError(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		c := run{n: 300, workers: 3, window: 5, failConsume: 42, failProduce: -1}
		got, acc, err := c.do(t, t.Context(), nil)
		if err == nil || err.Error() != "consume failed at 42" {
			t.Fatalf("error %v", err)
		}
		if len(got) != 43 {
			t.Fatalf("consumed %d items after the failure at 42", len(got))
		}
		acc.check(t, c.n, c.window)
	})
}

// TestProduceError: items emitted before the producer fails are still
// consumed; then its error is returned.
func TestProduceError(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		c := run{n: 300, workers: 3, window: 5, failConsume: -1, failProduce: 77}
		got, acc, err := c.do(t, t.Context(), nil)
		if err == nil || err.Error() != "produce failed at 77" {
			t.Fatalf("error %v", err)
		}
		if len(got) != 77 {
			t.Fatalf("consumed %d items, want the 77 emitted", len(got))
		}
		acc.check(t, c.n, c.window)
	})
}

// TestCancel: cancelling the context stops all stages, Run returns the
// context's error, and every goroutine is gone (synctest checks).
func TestCancel(t *testing.T) {
	for _, noWork := range []bool{false, true} {
		synctest.Test(t, func(t *testing.T) {
			ctx, cancel := context.WithCancel(t.Context())
			c := run{n: 1 << 30, workers: 4, window: 6, failConsume: -1, failProduce: -1}
			var got []int
			var acc *account
			var err error
			if noWork {
				acc = newAccount()
				err = Run(ctx, Stages[int]{
					Window: 6,
					Produce: func(ctx context.Context, emit func(int) error) error {
						for i := 0; ; i++ {
							acc.produced(i)
							if err := emit(i); err != nil {
								return err
							}
						}
					},
					Consume: func(i int) error {
						acc.finish(t, i, "consumed")
						got = append(got, i)
						if i == 100 {
							cancel()
						}
						return nil
					},
					Discard: func(i int) { acc.finish(t, i, "discarded") },
				})
			} else {
				got, acc, err = c.do(t, ctx, func(i int) {
					if i == 100 {
						cancel()
					}
				})
			}
			if !errors.Is(err, context.Canceled) {
				t.Fatalf("error %v, want context.Canceled", err)
			}
			if len(got) != 101 {
				t.Fatalf("%d items consumed after cancelling at 100", len(got))
			}
			for i, v := range got {
				if v != i {
					t.Fatalf("item %d consumed at %d", v, i)
				}
			}
			acc.mu.Lock()
			for i, s := range acc.state {
				if s == "produced" {
					t.Errorf("item %d neither consumed nor discarded", i)
				}
			}
			acc.mu.Unlock()
		})
	}
}

// TestCancelledBeforeStart: nothing is consumed and nothing leaks.
func TestCancelledBeforeStart(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		ctx, cancel := context.WithCancel(t.Context())
		cancel()
		c := run{n: 50, workers: 2, window: 2, failConsume: -1, failProduce: -1}
		_, acc, err := c.do(t, ctx, nil)
		if !errors.Is(err, context.Canceled) {
			t.Fatalf("error %v", err)
		}
		acc.check(t, c.n, c.window)
	})
}
