package blockcache

import (
	"bytes"
	"errors"
	"io"
	"math/rand/v2"
	"sync"
	"sync/atomic"
	"testing"
)

// source counts the loads of each block of data and can be told to fail
// a block.
type source struct {
	data  []byte
	block int64
	loads []atomic.Int32
	bad   atomic.Int32 // block to fail, -1 for none
}

func newSource(size int, block int64) *source {
	s := &source{data: make([]byte, size), block: block, loads: make([]atomic.Int32, (int64(size)+block-1)/block)}
	rng := rand.New(rand.NewPCG(1, 2))
	for i := range s.data {
		s.data[i] = byte(rng.Uint32())
	}
	s.bad.Store(-1)
	return s
}

var errBad = errors.New("bad block")

func (s *source) load(i int) ([]byte, error) {
	s.loads[i].Add(1)
	if int(s.bad.Load()) == i {
		return nil, errBad
	}
	return ReaderAt(bytes.NewReader(s.data), int64(len(s.data)), s.block)(i)
}

// TestReadAtParallel: readers in parallel, in any order, across block
// borders, get the source's bytes, and with room for every block each is
// loaded exactly once.
func TestReadAtParallel(t *testing.T) {
	s := newSource(1000000, 64<<10) // 15 full blocks and a short one
	r := New(int64(len(s.data)), Options{BlockSize: s.block, CacheBytes: 1 << 30, Load: s.load})
	var wg sync.WaitGroup
	for w := range 4 {
		wg.Go(func() {
			rng := rand.New(rand.NewPCG(uint64(w), 0))
			for range 200 {
				off := rng.Int64N(int64(len(s.data)))
				p := make([]byte, rng.IntN(200000))
				n, err := r.ReadAt(p, off)
				want := s.data[off:min(int64(len(s.data)), off+int64(len(p)))]
				if !bytes.Equal(p[:n], want) || (n < len(p)) != (err == io.EOF) || err != nil && err != io.EOF {
					t.Errorf("ReadAt(%d bytes at %d) = %d, %v", len(p), off, n, err)
					return
				}
			}
		})
	}
	wg.Wait()
	r.Close()
	for i := range s.loads {
		if n := s.loads[i].Load(); n != 1 {
			t.Errorf("block %d loaded %d times", i, n)
		}
	}
}

// TestReadAhead: reading block i loads i+1 in the background; a block
// that left the cache after being read is not read ahead again, and with
// room for one block nothing is read ahead.
func TestReadAhead(t *testing.T) {
	s := newSource(10*4096, 4096)
	r := New(int64(len(s.data)), Options{BlockSize: 4096, CacheBytes: 2 * 4096, Load: s.load})
	b := make([]byte, 10)
	r.ReadAt(b, 0)
	r.ahead.Wait()
	if s.loads[1].Load() != 1 {
		t.Errorf("block 1 not read ahead")
	}
	r.ReadAt(b, 3*4096) // evicts 0 and 1, reads 4 ahead
	r.ahead.Wait()
	r.ReadAt(b, 0) // block 1 was seen: not read ahead again
	r.ahead.Wait()
	if s.loads[1].Load() != 1 || s.loads[4].Load() != 1 || s.loads[0].Load() != 2 {
		t.Errorf("loads: 0 %d, 1 %d, 4 %d; want 2, 1, 1", s.loads[0].Load(), s.loads[1].Load(), s.loads[4].Load())
	}

	one := New(int64(len(s.data)), Options{BlockSize: 4096, CacheBytes: 1, Load: s.load})
	one.ReadAt(b, 8*4096)
	one.ahead.Wait()
	if s.loads[9].Load() != 0 {
		t.Errorf("read ahead with room for one block")
	}
}

// TestFailedBlock: a block whose load fails fails the reads that need it,
// is not kept, and is loaded again by the next reader.
func TestFailedBlock(t *testing.T) {
	s := newSource(5*4096, 4096)
	r := New(int64(len(s.data)), Options{BlockSize: 4096, CacheBytes: 1 << 20, Load: s.load})
	defer r.Close()
	s.bad.Store(2)
	b := make([]byte, 3*4096)
	n, err := r.ReadAt(b, 4096)
	if !errors.Is(err, errBad) || n != 4096 || !bytes.Equal(b[:n], s.data[4096:2*4096]) {
		t.Fatalf("ReadAt over a bad block: %d, %v", n, err)
	}
	if r.Seen(2) {
		t.Error("failed block counted as seen")
	}
	s.bad.Store(-1)
	if n, err := r.ReadAt(b, 4096); err != nil || n != len(b) || !bytes.Equal(b, s.data[4096:4*4096]) {
		t.Errorf("after the failure: %d, %v", n, err)
	}
	if _, err := r.ReadAt(b, -1); err == nil {
		t.Error("negative offset accepted")
	}
}
