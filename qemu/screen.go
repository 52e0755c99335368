package qemu

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"image"
	"image/color"
	"image/png"
	"net"
	"os"
	"regexp"
	"strconv"
	"strings"
	"time"
)

// Frame is one page the PE drew on the serial console (minint.serial=
// screen): the text between a cursor-home (ESC [ H) and the following
// clear-to-end (ESC [ J), without control sequences, one string per row.
type Frame struct {
	Lines []string
	At    time.Duration
}

// Text is the frame's rows joined by newlines.
func (f Frame) Text() string { return strings.Join(f.Lines, "\n") }

// frameScanner cuts frames out of the console's byte stream.
type frameScanner struct {
	in  bool
	buf []byte
}

const maxFrame = 64 << 10

// feed takes console bytes and returns the frames they complete.
func (f *frameScanner) feed(p []byte) [][]byte {
	var out [][]byte
	f.buf = append(f.buf, p...)
	for {
		if !f.in {
			i := bytes.Index(f.buf, []byte("\x1b[H"))
			if i < 0 {
				// Keep what may be the start of an ESC [ H cut in two.
				f.buf = append(f.buf[:0], f.buf[max(0, len(f.buf)-2):]...)
				return out
			}
			f.in, f.buf = true, append(f.buf[:0], f.buf[i+3:]...)
			continue
		}
		j := bytes.Index(f.buf, []byte("\x1b[J"))
		if j < 0 {
			if len(f.buf) > maxFrame {
				f.in, f.buf = false, f.buf[:0]
			}
			return out
		}
		out = append(out, append([]byte{}, f.buf[:j]...))
		f.in, f.buf = false, append(f.buf[:0], f.buf[j+3:]...)
	}
}

// frameLines turns a frame's bytes into rows.
func frameLines(b []byte) []string {
	s := ansiRE.ReplaceAllString(string(b), "")
	s = strings.ReplaceAll(s, "\r", "")
	lines := strings.Split(s, "\n")
	for i, l := range lines {
		lines[i] = strings.TrimRight(l, " ")
	}
	return lines
}

// Frames returns the frames drawn so far.
func (vm *VM) Frames() []Frame {
	vm.mu.Lock()
	defer vm.mu.Unlock()
	return append([]Frame(nil), vm.frames...)
}

// WaitFrame waits for a frame (any since start) whose text matches re.
func (vm *VM) WaitFrame(ctx context.Context, re *regexp.Regexp) (Frame, error) {
	var found Frame
	err := vm.wait(ctx, "a screen matching "+re.String(), func() bool {
		for _, f := range vm.frames {
			if re.MatchString(f.Text()) {
				found = f
				return true
			}
		}
		return false
	})
	return found, err
}

// qmp runs one QMP command on the guest's monitor (Options.Screen).
func (vm *VM) qmp(ctx context.Context, command string, arguments any) (json.RawMessage, error) {
	if !vm.opts.Screen {
		return nil, fmt.Errorf("QMP: the VM was started without Options.Screen")
	}
	var d net.Dialer
	conn, err := d.DialContext(ctx, "unix", vm.qmpPath())
	if err != nil {
		return nil, fmt.Errorf("QMP: %w", err)
	}
	defer conn.Close()
	if dl, ok := ctx.Deadline(); ok {
		conn.SetDeadline(dl)
	} else {
		conn.SetDeadline(time.Now().Add(30 * time.Second))
	}
	r := bufio.NewReader(conn)
	read := func() (map[string]json.RawMessage, error) {
		for {
			line, err := r.ReadBytes('\n')
			if err != nil {
				return nil, err
			}
			var m map[string]json.RawMessage
			if err := json.Unmarshal(line, &m); err != nil {
				return nil, err
			}
			if _, ev := m["event"]; !ev {
				return m, nil
			}
		}
	}
	if _, err := read(); err != nil { // the greeting
		return nil, fmt.Errorf("QMP greeting: %w", err)
	}
	for _, cmd := range []map[string]any{{"execute": "qmp_capabilities"}, {"execute": command, "arguments": arguments}} {
		if cmd["arguments"] == nil {
			delete(cmd, "arguments")
		}
		b, _ := json.Marshal(cmd)
		if _, err := conn.Write(append(b, '\n')); err != nil {
			return nil, err
		}
		m, err := read()
		if err != nil {
			return nil, fmt.Errorf("QMP %s: %w", cmd["execute"], err)
		}
		if e, bad := m["error"]; bad {
			return nil, fmt.Errorf("QMP %s: %s", cmd["execute"], e)
		}
		if cmd["execute"] == command {
			return m["return"], nil
		}
	}
	return nil, nil
}

// Screenshot writes a PNG picture of the guest's screen (Options.Screen)
// to path.
func (vm *VM) Screenshot(ctx context.Context, path string) error {
	ppm := vm.qmpPath() + ".ppm"
	defer os.Remove(ppm)
	if _, err := vm.qmp(ctx, "screendump", map[string]any{"filename": ppm}); err != nil {
		return err
	}
	b, err := os.ReadFile(ppm)
	if err != nil {
		return err
	}
	img, err := DecodePPM(b)
	if err != nil {
		return err
	}
	var out bytes.Buffer
	if err := png.Encode(&out, img); err != nil {
		return err
	}
	return os.WriteFile(path, out.Bytes(), 0o644)
}

// DecodePPM decodes a binary PPM (P6, maxval ≤ 255) as QEMU's screendump
// writes it.
func DecodePPM(b []byte) (image.Image, error) {
	var fields []int
	rest := b
	if !bytes.HasPrefix(rest, []byte("P6")) {
		return nil, fmt.Errorf("not a binary PPM (P6)")
	}
	rest = rest[2:]
	for len(fields) < 3 {
		rest = bytes.TrimLeft(rest, " \t\r\n")
		if len(rest) > 0 && rest[0] == '#' {
			if i := bytes.IndexByte(rest, '\n'); i >= 0 {
				rest = rest[i+1:]
				continue
			}
			return nil, fmt.Errorf("PPM: truncated header")
		}
		i := bytes.IndexAny(rest, " \t\r\n")
		if i <= 0 {
			return nil, fmt.Errorf("PPM: truncated header")
		}
		n, err := strconv.Atoi(string(rest[:i]))
		if err != nil || n <= 0 || n > 1<<14 {
			return nil, fmt.Errorf("PPM: bad header field %q", rest[:i])
		}
		fields = append(fields, n)
		rest = rest[i:]
	}
	rest = rest[1:] // the single whitespace after maxval
	w, h, maxval := fields[0], fields[1], fields[2]
	if maxval > 255 {
		return nil, fmt.Errorf("PPM: 16-bit samples are not supported")
	}
	if len(rest) < w*h*3 {
		return nil, fmt.Errorf("PPM: %d bytes of pixels, want %d", len(rest), w*h*3)
	}
	img := image.NewRGBA(image.Rect(0, 0, w, h))
	for y := 0; y < h; y++ {
		for x := 0; x < w; x++ {
			p := rest[(y*w+x)*3:]
			scale := func(v byte) uint8 { return uint8(int(v) * 255 / maxval) }
			img.SetRGBA(x, y, color.RGBA{scale(p[0]), scale(p[1]), scale(p[2]), 255})
		}
	}
	return img, nil
}
