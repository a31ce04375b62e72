package translate

import (
	"fmt"
	"sort"

	"github.com/weftmesh/weft/internal/model"
)

// diagnostics collects the problems of one Generate call, once each.
type diagnostics struct {
	list model.Diagnostics
	seen map[string]bool
	// snap, when set, finds the objects that declared services.
	snap *model.Snapshot
}

// errorf records an error about object m (nil if unknown) at field.
func (d *diagnostics) errorf(m *model.Meta, field, format string, args ...any) {
	d.add(model.SeverityError, m, field, format, args...)
}

// warnf records a warning about object m at field.
func (d *diagnostics) warnf(m *model.Meta, field, format string, args ...any) {
	d.add(model.SeverityWarning, m, field, format, args...)
}

func (d *diagnostics) add(sev model.Severity, m *model.Meta, field, format string, args ...any) {
	if d == nil {
		return
	}
	diag := model.Errorf(m, field, format, args...)
	if sev == model.SeverityWarning {
		diag = model.Warningf(m, field, format, args...)
	}
	if m == nil {
		diag = model.Diagnostic{Severity: sev, Field: field, Message: fmt.Sprintf(format, args...)}
	}
	key := diag.String()
	if d.seen == nil {
		d.seen = map[string]bool{}
	}
	if !d.seen[key] {
		d.seen[key] = true
		d.list = append(d.list, diag)
	}
}

// serviceWarnf records a warning about a service, naming the object that
// declared it when known.
func (d *diagnostics) serviceWarnf(svc *model.Service, format string, args ...any) {
	if d == nil {
		return
	}
	var m *model.Meta
	if k := svc.Origin; k != nil {
		m = &model.Meta{Kind: k.Kind, Namespace: k.Namespace, Name: k.Name}
		if d.snap != nil {
			if c := d.snap.Get(*k); c != nil {
				m = &c.Meta
			}
		}
	}
	d.warnf(m, "", format, args...)
}

// sorted returns the diagnostics in a stable order.
func (d *diagnostics) sorted() model.Diagnostics {
	sort.SliceStable(d.list, func(i, j int) bool { return d.list[i].String() < d.list[j].String() })
	return d.list
}
