// Package ordered runs the WIM pipelines: one goroutine produces items in
// order (chunks read from a file or a WIM), a pool of workers transforms
// them in parallel (compresses or decompresses them), and the caller's
// goroutine consumes them in the order they were produced (writes them out,
// hashes them). A bounded window of items in flight bounds memory, and the
// first error, in production order, stops all three stages.
package ordered

import (
	"context"
	"sync"
)

// Stages describes a pipeline for Run.
type Stages[T any] struct {
	// Workers is the number of goroutines running Work (at least 1).
	Workers int
	// Window is the number of items produced but not yet consumed at
	// most (at least 1); it bounds the memory the items hold.
	Window int
	// Produce emits the items in order and returns. emit takes ownership
	// of the item and fails once the pipeline stops (an error or ctx
	// done); Produce must then return promptly, with emit's error or its
	// own.
	Produce func(ctx context.Context, emit func(T) error) error
	// Work transforms one item on a worker goroutine; worker (0 to
	// Workers-1) lets Work keep per-goroutine state such as a
	// compressor. Nil passes items straight to Consume.
	Work func(worker int, item T) error
	// Consume takes each item, in production order, on the goroutine
	// that called Run.
	Consume func(item T) error
	// Discard, if set, releases an item that was produced but will not
	// be consumed because the pipeline stopped.
	Discard func(item T)
}

type slot[T any] struct {
	item T
	err  error
	done chan struct{}
}

// Run runs the pipeline until Produce returns and every item it emitted is
// consumed, or until the first error: the error of Work or Consume on the
// earliest item, else Produce's, else ctx's. It returns only after every
// goroutine it started has returned.
func Run[T any](ctx context.Context, s Stages[T]) error {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	workers, window := max(s.Workers, 1), max(s.Window, 1)
	queue := make(chan *slot[T], window) // in order, to the consumer
	work := make(chan *slot[T], window)  // to the workers
	discard := func(item T) {
		if s.Discard != nil {
			s.Discard(item)
		}
	}

	var wg sync.WaitGroup
	if s.Work != nil {
		for w := range workers {
			wg.Go(func() {
				for sl := range work {
					if err := ctx.Err(); err != nil {
						sl.err = err
					} else {
						sl.err = s.Work(w, sl.item)
					}
					close(sl.done)
				}
			})
		}
	}
	emit := func(item T) error {
		if err := ctx.Err(); err != nil {
			discard(item)
			return err
		}
		sl := &slot[T]{item: item, done: make(chan struct{})}
		select {
		case queue <- sl:
		case <-ctx.Done():
			discard(item)
			return ctx.Err()
		}
		if s.Work == nil {
			close(sl.done)
			return nil
		}
		select {
		case work <- sl:
		case <-ctx.Done():
			// Already queued: the consumer will wait for it.
			sl.err = ctx.Err()
			close(sl.done)
			return ctx.Err()
		}
		return nil
	}
	var perr error
	wg.Go(func() {
		defer close(work)
		defer close(queue)
		perr = s.Produce(ctx, emit)
	})

	var first error
	for sl := range queue {
		<-sl.done
		if first != nil {
			discard(sl.item)
			continue
		}
		if sl.err == nil {
			sl.err = ctx.Err() // cancelled: consume nothing more
		}
		if sl.err != nil {
			first = sl.err
			discard(sl.item)
		} else {
			first = s.Consume(sl.item)
		}
		if first != nil {
			cancel() // stops the producer and the workers; keep draining
		}
	}
	wg.Wait()
	if first == nil {
		first = perr
	}
	return first
}
