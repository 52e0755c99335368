package main

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"net"
	"os"
	"os/signal"
	"strings"
	"syscall"
	"time"

	"github.com/minint/minint/bytesize"
	"github.com/minint/minint/serve"
	"github.com/spf13/cobra"
)

func init() { register(newServeCmd) }

// serveContext ends `minint serve`: on SIGINT or SIGTERM (tests replace it).
var serveContext = func() (context.Context, context.CancelFunc) {
	return signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
}

func newServeCmd() *cobra.Command {
	c := &cobra.Command{
		Use:   "serve DIR",
		Short: "Serve packages, take captures and user state (WebDAV), status events and logs, and show a live dashboard of every deployment",
		Long: `Serve DIR for a small site: packages with Range requests, the WebDAV
PUT/MOVE/DELETE/MKCOL that capture and user-state stores use, the status
events and failure logs of sequences whose status-url points here, and a
live dashboard at / (one row per machine, failed first).

Writes need the write token (--token, MININT_SERVE_TOKEN, or a random one
printed at start): clients put it in their URLs as http://:TOKEN@host/….
Events and logs are kept in the state directory and survive a restart.`,
		Args: argCount(1, 1),
	}
	fs := c.Flags()
	listen := fs.String("listen", ":8080", "`ADDRESS` to listen on (host:port)")
	token := fs.String("token", "", "the write `TOKEN` (default $MININT_SERVE_TOKEN, else a random one, printed)")
	tokenFile := fs.String("token-file", "", "read the write token from `FILE`")
	state := fs.String("state", "", "`DIR` for the events journal and logs (default DIR/.minint-serve, not served)")
	dashAuth := fs.String("dashboard-auth", "", "`USER:PASSWORD` the dashboard, its stream and the logs require (default $MININT_DASHBOARD_AUTH; none)")
	private := fs.StringArray("private", nil, "`FOLDER` below DIR whose files are read with the write token only, e.g. states (repeatable)")
	var maxLog, maxPut bytesize.Size
	maxLog = serve.DefaultMaxLog
	fs.Var(&maxLog, "max-log", "largest failure log accepted, a `SIZE`")
	fs.Var(&maxPut, "max-put", "largest PUT accepted, a `SIZE` (default no limit)")
	c.RunE = func(c *cobra.Command, args []string) error {
		o := serve.Options{Dir: args[0], State: *state, Token: *token, Private: *private, MaxLog: int64(maxLog), MaxPut: int64(maxPut)}
		if fi, err := os.Stat(o.Dir); err != nil || !fi.IsDir() {
			return fmt.Errorf("%s is not a directory", o.Dir)
		}
		if *tokenFile != "" {
			if *token != "" {
				return usageErrorf("--token and --token-file: give one")
			}
			b, err := os.ReadFile(*tokenFile)
			if err != nil {
				return err
			}
			if o.Token = strings.TrimSpace(string(b)); o.Token == "" {
				return fmt.Errorf("%s: empty token", *tokenFile)
			}
		}
		if o.Token == "" {
			o.Token = os.Getenv("MININT_SERVE_TOKEN")
		}
		generated := o.Token == ""
		if generated {
			var b [16]byte
			rand.Read(b[:])
			o.Token = hex.EncodeToString(b[:])
		}
		auth := *dashAuth
		if auth == "" {
			auth = os.Getenv("MININT_DASHBOARD_AUTH")
		}
		if auth != "" {
			u, p, ok := strings.Cut(auth, ":")
			if !ok || u == "" || p == "" {
				return usageErrorf("--dashboard-auth %q: want USER:PASSWORD", strings.SplitN(auth, ":", 2)[0]+":…")
			}
			o.DashboardUser, o.DashboardPassword = u, p
		}
		stderr := c.ErrOrStderr()
		o.Log = func(format string, a ...any) {
			fmt.Fprintf(stderr, "%s %s\n", time.Now().Format("15:04:05"), fmt.Sprintf(format, a...))
		}
		s, err := serve.New(o)
		if err != nil {
			return err
		}
		ln, err := net.Listen("tcp", *listen)
		if err != nil {
			s.Close()
			return err
		}
		base := "http://" + displayAddr(ln.Addr())
		out := c.OutOrStdout()
		fmt.Fprintf(out, "serving %s on %s (dashboard %s/)\n", o.Dir, base, base)
		tokenShown := "TOKEN"
		if generated {
			tokenShown = o.Token
			fmt.Fprintf(out, "write token: %s (random; --token or MININT_SERVE_TOKEN keeps one)\n", o.Token)
		}
		fmt.Fprintf(out, "status-url: %s/status (with http://:%s@… for writes)\n", base, tokenShown)
		ctx, cancel := serveContext()
		defer cancel()
		return s.Serve(ctx, ln)
	}
	return c
}

// displayAddr is an address clients can use: a wildcard listener shows
// the machine's host name.
func displayAddr(a net.Addr) string {
	host, port, err := net.SplitHostPort(a.String())
	if err != nil {
		return a.String()
	}
	if ip := net.ParseIP(host); ip != nil && ip.IsUnspecified() {
		if h, err := os.Hostname(); err == nil {
			host = h
		}
	}
	return net.JoinHostPort(host, port)
}
