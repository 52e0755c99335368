// Package bitstream reads and writes the bitstream shared by the WIM XPRESS
// and LZX formats: 16-bit little-endian coding units consumed MSB first, with
// raw bytes interleaved at positions that depend on exactly when coding units
// are fetched.
//
// The Reader fetches coding units lazily, one at a time, exactly as wimlib
// (and Microsoft's implementation) does, because the position of interleaved
// raw bytes (XPRESS long match lengths, LZX uncompressed block headers) is
// defined by that refill policy. A wider eager buffer would misplace them.
package bitstream

// Reader is a bit reader over an in-memory buffer. The zero value is not
// useful; use Init. Reading past the end yields zero bits rather than an
// error, as in wimlib: a valid stream's final codeword may be decoded from a
// partially padded buffer, and malformed data is caught by its effects
// (bad offsets, lengths, or checksums) instead.
type Reader struct {
	// Bits not yet consumed, left-justified: the next bit is bit 31.
	Buf uint32
	// Number of valid bits in Buf.
	Left uint32
	In   []byte
	Pos  int
}

// Init resets r to read from in.
func (r *Reader) Init(in []byte) {
	r.Buf = 0
	r.Left = 0
	r.In = in
	r.Pos = 0
}

// Ensure makes at least n (<= 16) bits available.
func (r *Reader) Ensure(n uint32) {
	if r.Left < n {
		r.fill()
	}
}

func (r *Reader) fill() {
	if r.Pos+1 < len(r.In) {
		r.Buf |= (uint32(r.In[r.Pos]) | uint32(r.In[r.Pos+1])<<8) << (16 - r.Left)
		r.Pos += 2
		r.Left += 16
		return
	}
	r.Left = 32
}

// Ensure17 is Ensure for up to 17 bits, which may need two coding units.
func (r *Reader) Ensure17(n uint32) {
	if r.Left >= n {
		return
	}
	r.fill()
	if n == 17 && r.Left == 16 {
		if r.Pos+1 < len(r.In) {
			r.Buf |= uint32(r.In[r.Pos]) | uint32(r.In[r.Pos+1])<<8
			r.Pos += 2
			r.Left = 32
			return
		}
		r.Left = 32
	}
}

// Peek returns the next n bits without consuming them (n <= Left).
func (r *Reader) Peek(n uint32) uint32 {
	return (r.Buf >> 1) >> (31 - n)
}

// Remove consumes n bits (n <= Left).
func (r *Reader) Remove(n uint32) {
	r.Buf <<= n
	r.Left -= n
}

// Pop consumes and returns n bits (n <= Left).
func (r *Reader) Pop(n uint32) uint32 {
	v := (r.Buf >> 1) >> (31 - n)
	r.Buf <<= n
	r.Left -= n
	return v
}

// Read returns the next n (<= 17) bits.
func (r *Reader) Read(n uint32) uint32 {
	r.Ensure17(n)
	return r.Pop(n)
}

// RawByte returns the next raw byte after the fetched coding units, or 0
// when the input is exhausted.
func (r *Reader) RawByte() byte {
	if r.Pos < len(r.In) {
		b := r.In[r.Pos]
		r.Pos++
		return b
	}
	return 0
}

// RawU16 returns the next raw little-endian 16-bit value, or 0 when fewer
// than two bytes remain.
func (r *Reader) RawU16() uint32 {
	if r.Pos+1 < len(r.In) {
		v := uint32(r.In[r.Pos]) | uint32(r.In[r.Pos+1])<<8
		r.Pos += 2
		return v
	}
	return 0
}

// RawU32 returns the next raw little-endian 32-bit value, or 0 when fewer
// than four bytes remain.
func (r *Reader) RawU32() uint32 {
	if r.Pos+3 < len(r.In) {
		p := r.In[r.Pos : r.Pos+4]
		r.Pos += 4
		return uint32(p[0]) | uint32(p[1])<<8 | uint32(p[2])<<16 | uint32(p[3])<<24
	}
	return 0
}

// Align discards buffered bits so the next raw read starts right after the
// coding units fetched so far.
func (r *Reader) Align() {
	r.Buf = 0
	r.Left = 0
}
