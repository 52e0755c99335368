package screen

import (
	"bytes"
	"io"
	"sync"
	"time"
)

// Display redraws a Model's page on a terminal whenever it changes, at
// most every interval (progress arrives many times a second).
type Display struct {
	w             io.Writer
	m             *Model
	width, height int
	interval      time.Duration

	mu     sync.Mutex
	paused bool
	stop   chan struct{}
	done   chan struct{}
}

// NewDisplay starts drawing m on w, a terminal of width × height cells.
// Lines stay one column short of the width: on a line filled to the last
// column the Linux console's clear-to-end would erase its last character.
func NewDisplay(w io.Writer, m *Model, width, height int, interval time.Duration) *Display {
	d := &Display{w: w, m: m, width: width - 1, height: height, interval: interval, stop: make(chan struct{}), done: make(chan struct{})}
	go d.loop()
	return d
}

func (d *Display) loop() {
	defer close(d.done)
	for {
		ch := d.m.Changed()
		d.Draw()
		select {
		case <-d.stop:
			return
		case <-ch:
		case <-time.After(time.Second): // the elapsed time and ETA move on
		}
		select {
		case <-d.stop:
			return
		case <-time.After(d.interval):
		}
	}
}

// Frame renders one frame: cursor home, each line cleared to its end, the
// rest of the screen cleared.
func Frame(lines []string) []byte {
	var b bytes.Buffer
	b.WriteString("\x1b[H")
	for i, l := range lines {
		if i > 0 {
			b.WriteString("\r\n")
		}
		b.WriteString(l)
		b.WriteString("\x1b[K")
	}
	b.WriteString("\x1b[J")
	return b.Bytes()
}

// Draw draws the page now (unless paused), in one write.
func (d *Display) Draw() {
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.paused {
		return
	}
	d.w.Write(Frame(d.m.Render(d.width, d.height)))
}

// Pause stops drawing (a shell has the terminal) and clears the screen;
// Resume draws again.
func (d *Display) Pause() {
	d.mu.Lock()
	defer d.mu.Unlock()
	d.paused = true
	d.w.Write([]byte("\x1b[H\x1b[J"))
}

// Resume draws again after Pause.
func (d *Display) Resume() {
	d.mu.Lock()
	d.paused = false
	d.mu.Unlock()
	d.Draw()
}

// Close stops the display after a last frame.
func (d *Display) Close() {
	close(d.stop)
	<-d.done
	d.Draw()
}
