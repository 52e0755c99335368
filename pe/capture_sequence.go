package pe

import (
	"bytes"
	"fmt"
	"net/url"
	"strings"
	"text/template"
)

// captureTemplate is the sequence of a capture PE (minint iso --capture):
// find the one installed system, capture its generalized view and upload
// it. Values are quoted as YAML strings by the template's caller.
var captureTemplate = template.Must(template.New("capture").Parse(`version: 1
name: capture-reference
steps:
  - type: requirements
    min-memory: 256MiB
  - type: capture-image
    compression: {{.Compression}}
    destination:
      url: {{.URL}}
  - type: poweroff
`))

// CaptureSequence returns the default capture sequence uploading to dest
// (an http(s) URL of the WIM file), validated.
func CaptureSequence(dest, compression string) ([]byte, error) {
	u, err := url.Parse(dest)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" || strings.HasSuffix(u.Path, "/") || u.Path == "" {
		return nil, fmt.Errorf("capture destination %q: want an http(s) URL of the WIM file, e.g. http://10.0.2.2:8080/images/ref.wim", dest)
	}
	if compression == "" {
		compression = "lzx"
	}
	var b bytes.Buffer
	q := func(s string) string { return `"` + strings.NewReplacer(`\`, `\\`, `"`, `\"`).Replace(s) + `"` }
	if err := captureTemplate.Execute(&b, map[string]string{"URL": q(dest), "Compression": q(compression)}); err != nil {
		return nil, err
	}
	if _, err := Parse("capture sequence", b.Bytes()); err != nil {
		return nil, err
	}
	return b.Bytes(), nil
}
