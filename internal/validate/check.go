package validate

import (
	"bufio"
	"fmt"
	"io"
	"sort"

	"github.com/weftmesh/weft/internal/manifest"
	"github.com/weftmesh/weft/internal/model"
)

// Input is one named configuration file.
type Input struct {
	// Name is the file name used in diagnostics ("-" input is "<stdin>").
	Name string
	Data []byte
}

// Report is the outcome of checking a set of inputs.
type Report struct {
	// Diagnostics are sorted by file, line, field and message.
	Diagnostics model.Diagnostics
	// Objects counts the objects read (with or without problems).
	Objects int
	// Files counts the inputs.
	Files int
}

// Errors counts the error diagnostics.
func (r *Report) Errors() int { return r.count(model.SeverityError) }

// Warnings counts the warning diagnostics.
func (r *Report) Warnings() int { return r.count(model.SeverityWarning) }

func (r *Report) count(s model.Severity) int {
	n := 0
	for _, d := range r.Diagnostics {
		if d.Severity == s {
			n++
		}
	}
	return n
}

// Summary is the last line of `weft validate` output:
// "1 error, 2 warnings in 5 objects (3 files)".
func (r *Report) Summary() string {
	return fmt.Sprintf("%s, %s in %s (%s)",
		plural(r.Errors(), "error"), plural(r.Warnings(), "warning"),
		plural(r.Objects, "object"), plural(r.Files, "file"))
}

func plural(n int, what string) string {
	if n == 1 {
		return "1 " + what
	}
	return fmt.Sprintf("%d %ss", n, what)
}

// Write prints the diagnostics one per line, then the summary, as
// `weft validate` does.
func (r *Report) Write(w io.Writer) error {
	bw := bufio.NewWriter(w)
	for _, d := range r.Diagnostics {
		bw.WriteString(d.String())
		bw.WriteByte('\n')
	}
	bw.WriteString(r.Summary())
	bw.WriteByte('\n')
	return bw.Flush()
}

// Check decodes every input strictly, validates each object that decoded
// cleanly with [Object], and all of them together with [Set]. Diagnostics
// of semantic rules carry the line of the offending field.
func Check(inputs []Input) Report {
	rep := Report{Files: len(inputs)}
	var valid []*model.Config
	// Set reports objects by identity and origin; find their field lines.
	type where struct {
		kind      model.Kind
		namespace string
		name      string
		origin    model.Origin
	}
	lines := map[where]manifest.Lines{}
	for _, in := range inputs {
		for _, doc := range manifest.DecodeDocuments(in.Name, in.Data, "file") {
			rep.Diagnostics = append(rep.Diagnostics, doc.Diagnostics...)
			if doc.Config == nil {
				continue
			}
			rep.Objects++
			if doc.Diagnostics.HasErrors() {
				continue // the spec is incomplete; semantic checks would mislead
			}
			c := doc.Config
			lines[where{c.Kind, c.Namespace, c.Name, c.Origin}] = doc.Lines
			valid = append(valid, doc.Config)
			rep.Diagnostics = append(rep.Diagnostics, locate(Object(doc.Config), doc.Lines)...)
		}
	}
	for _, d := range Set(valid) {
		if l, ok := lines[where{d.Kind, d.Namespace, d.Name, d.Origin}]; ok {
			d = locate(model.Diagnostics{d}, l)[0]
		}
		rep.Diagnostics = append(rep.Diagnostics, d)
	}
	Sort(rep.Diagnostics)
	return rep
}

// locate sets each diagnostic's line to the line of its field, when known.
func locate(ds model.Diagnostics, lines manifest.Lines) model.Diagnostics {
	for i := range ds {
		if ds[i].Field == "" {
			continue
		}
		if n := lines.Line(ds[i].Field); n > 0 {
			ds[i].Origin.Line = n
		}
	}
	return ds
}

// Sort orders diagnostics by file, line, field, severity and message.
func Sort(ds model.Diagnostics) {
	sort.SliceStable(ds, func(i, j int) bool {
		a, b := ds[i], ds[j]
		if a.Origin.File != b.Origin.File {
			return a.Origin.File < b.Origin.File
		}
		if a.Origin.Line != b.Origin.Line {
			return a.Origin.Line < b.Origin.Line
		}
		if a.Field != b.Field {
			return a.Field < b.Field
		}
		if a.Severity != b.Severity {
			return a.Severity < b.Severity
		}
		return a.Message < b.Message
	})
}
