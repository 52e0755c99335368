package wim

import (
	"context"
	"crypto/sha1"
	"fmt"
	"runtime"
	"sort"
	"sync"
	"sync/atomic"

	"github.com/cespare/xxhash/v2"
	"golang.org/x/sync/errgroup"
)

// VerifyOptions controls Verify.
type VerifyOptions struct {
	// Threads check blobs in parallel; 0 means GOMAXPROCS.
	Threads int
	// Progress, if set, is called with bytes checked so far and the total.
	Progress func(done, total int64)
}

// Verify checks the integrity table of every part (if present), parses
// every image's metadata, checks that every referenced blob exists, and
// reads every blob in the blob table checking its SHA-1. Cancelling ctx
// stops it with ctx's error.
func (r *Reader) Verify(ctx context.Context, opts VerifyOptions) error {
	return r.verify(ctx, opts, nil)
}

// verify is Verify; with sums not nil it also records each blob's XXH64
// there (Checksums), only once its SHA-1 matched.
func (r *Reader) verify(ctx context.Context, opts VerifyOptions, sums map[*blob]uint64) error {
	if opts.Threads <= 0 {
		opts.Threads = runtime.GOMAXPROCS(0)
	}
	var total int64
	for _, p := range r.parts {
		if p.hdr.integrity.sizeInWim != 0 {
			total += p.hdr.blobTable.offset + p.hdr.blobTable.sizeInWim - headerSize
		}
	}
	blobs := make([]*blob, 0, len(r.blobs))
	for _, b := range r.blobs {
		blobs = append(blobs, b)
		total += b.size
	}
	sort.Slice(blobs, func(i, j int) bool {
		if blobs[i].partNum != blobs[j].partNum {
			return blobs[i].partNum < blobs[j].partNum
		}
		return blobs[i].res.rh.offset < blobs[j].res.rh.offset
	})
	var done atomic.Int64
	var mu sync.Mutex
	progress := func(n int64) {
		d := done.Add(n)
		if opts.Progress != nil {
			mu.Lock()
			opts.Progress(d, total)
			mu.Unlock()
		}
	}
	for _, p := range r.parts {
		if err := checkIntegrity(p, progress); err != nil {
			return err
		}
	}
	for _, img := range r.images {
		if err := img.Walk(func(path string, f *File) error {
			if f.Hash != zeroHash && f.data == nil {
				return fmt.Errorf("%w: image %d %s: data %x missing from the blob table", ErrFormat, img.Index, path, f.Hash)
			}
			for _, s := range f.Streams {
				if s.Hash != zeroHash && s.b == nil {
					return fmt.Errorf("%w: image %d %s:%s: data %x missing from the blob table", ErrFormat, img.Index, path, s.Name, s.Hash)
				}
			}
			return nil
		}); err != nil {
			return err
		}
	}
	g, gctx := errgroup.WithContext(ctx)
	g.SetLimit(opts.Threads)
	for _, b := range blobs {
		if gctx.Err() != nil {
			break
		}
		g.Go(func() error {
			sum, err := verifyBlob(gctx, b, opts.Threads, sums != nil, progress)
			if err == nil && sums != nil {
				mu.Lock()
				sums[b] = sum
				mu.Unlock()
			}
			return err
		})
	}
	if err := g.Wait(); err != nil {
		return err
	}
	return ctx.Err()
}

// verifyBlob checks b's SHA-1 and returns the XXH64 of its data if
// withSum is set.
func verifyBlob(ctx context.Context, b *blob, threads int, withSum bool, progress func(int64)) (uint64, error) {
	if b.solid {
		return 0, unsupportedErr("blob %x is in a solid resource", b.hash)
	}
	h := sha1.New()
	var x *xxhash.Digest
	if withSum {
		x = xxhash.New()
	}
	err := b.res.eachChunk(ctx, threads, func(c []byte) error {
		h.Write(c)
		if x != nil {
			x.Write(c)
		}
		progress(int64(len(c)))
		return nil
	})
	if err != nil {
		return 0, fmt.Errorf("blob %x at offset %d: %w", b.hash, b.res.rh.offset, err)
	}
	var got [20]byte
	h.Sum(got[:0])
	if got != b.hash {
		return 0, fmt.Errorf("%w: blob at offset %d of %s has SHA-1 %x, want %x", ErrChecksum, b.res.rh.offset, b.res.p.name, got, b.hash)
	}
	if x == nil {
		return 0, nil
	}
	return x.Sum64(), nil
}
