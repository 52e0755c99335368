package wim

import (
	"io"
)

// outFile buffers sequential writes to an io.WriteSeeker and lets the chunk
// table of a resource be filled in after its chunks, usually still in the
// buffer so that no seek is needed.
type outFile struct {
	w        io.WriteSeeker
	buf      []byte
	bufStart int64 // file offset of buf[0]
	err      error
}

func newOutFile(w io.WriteSeeker, start int64) *outFile {
	return &outFile{w: w, buf: make([]byte, 0, 256<<10), bufStart: start}
}

func (o *outFile) offset() int64 { return o.bufStart + int64(len(o.buf)) }

func (o *outFile) Write(b []byte) (int, error) {
	if o.err != nil {
		return 0, o.err
	}
	if len(o.buf)+len(b) > cap(o.buf) {
		if err := o.flush(); err != nil {
			return 0, err
		}
		if len(b) >= cap(o.buf) {
			n, err := o.w.Write(b)
			o.bufStart += int64(n)
			if err != nil {
				o.err = err
			}
			return n, err
		}
	}
	o.buf = append(o.buf, b...)
	return len(b), nil
}

func (o *outFile) flush() error {
	if o.err != nil {
		return o.err
	}
	if len(o.buf) > 0 {
		n, err := o.w.Write(o.buf)
		o.bufStart += int64(n)
		if err == nil && n != len(o.buf) {
			err = io.ErrShortWrite
		}
		o.buf = o.buf[:0]
		if err != nil {
			o.err = err
			return err
		}
	}
	return nil
}

// patch overwrites already written bytes at off.
func (o *outFile) patch(b []byte, off int64) error {
	if o.err != nil {
		return o.err
	}
	if off >= o.bufStart && off+int64(len(b)) <= o.offset() {
		copy(o.buf[off-o.bufStart:], b)
		return nil
	}
	if err := o.flush(); err != nil {
		return err
	}
	end := o.offset()
	if _, err := o.w.Seek(off, io.SeekStart); err != nil {
		o.err = err
		return err
	}
	if _, err := o.w.Write(b); err != nil {
		o.err = err
		return err
	}
	if _, err := o.w.Seek(end, io.SeekStart); err != nil {
		o.err = err
		return err
	}
	return nil
}

// cut removes the bytes [from, to) if they and everything after them are
// still buffered, and reports whether it did.
func (o *outFile) cut(from, to int64) bool {
	if o.err != nil || from < o.bufStart || to > o.offset() || from > to {
		return false
	}
	i, j := from-o.bufStart, to-o.bufStart
	o.buf = append(o.buf[:i], o.buf[j:]...)
	return true
}
