package job

import (
	"github.com/axarchive/axarchive/archive"
	"github.com/axarchive/axarchive/archive/manifest"
)

// selection decides which events an export keeps. A nil selection keeps everything.
type selection struct {
	include, exclude, aggregateTypes map[string]struct{}
}

func newSelection(f *manifest.Filter) *selection {
	if f == nil {
		return nil
	}
	set := func(names []string) map[string]struct{} {
		if len(names) == 0 {
			return nil
		}
		m := make(map[string]struct{}, len(names))
		for _, n := range names {
			m[n] = struct{}{}
		}
		return m
	}
	return &selection{include: set(f.IncludeTypes), exclude: set(f.ExcludeTypes), aggregateTypes: set(f.AggregateTypes)}
}

func (s *selection) keep(r *archive.Record) bool {
	if s == nil {
		return true
	}
	typ := ""
	if r.Payload != nil {
		typ = r.Payload.Type
	}
	if s.include != nil {
		if _, ok := s.include[typ]; !ok {
			return false
		}
	}
	if _, ok := s.exclude[typ]; ok {
		return false
	}
	if s.aggregateTypes != nil {
		if _, ok := s.aggregateTypes[r.AggregateType]; !ok {
			return false
		}
	}
	return true
}

// normalizeFilter returns nil for a filter that selects nothing out, so that "no filter" has one form
// in the manifest and in resume checks.
func normalizeFilter(f *manifest.Filter) *manifest.Filter {
	if f == nil || (len(f.IncludeTypes) == 0 && len(f.ExcludeTypes) == 0 && len(f.AggregateTypes) == 0) {
		return nil
	}
	return f
}
