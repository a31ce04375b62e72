package translate

import (
	"fmt"

	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/reflect/protoreflect"
	"google.golang.org/protobuf/types/known/anypb"
)

// validateDeep runs the message's ValidateAll and, unlike it, also
// validates every message packed in an Any below it (typed filter, socket
// and extension configs), which Envoy checks when it loads them.
func validateDeep(m proto.Message) error {
	if v, ok := m.(interface{ ValidateAll() error }); ok {
		if err := v.ValidateAll(); err != nil {
			return err
		}
	}
	return validateAnys(m.ProtoReflect())
}

func validateAnys(m protoreflect.Message) error {
	var err error
	m.Range(func(fd protoreflect.FieldDescriptor, v protoreflect.Value) bool {
		if fd.Message() == nil {
			return true
		}
		check := func(sub protoreflect.Message) bool {
			if a, ok := sub.Interface().(*anypb.Any); ok {
				inner, uerr := a.UnmarshalNew()
				if uerr != nil {
					err = fmt.Errorf("%s: %v", fd.Name(), uerr)
					return false
				}
				if verr := validateDeep(inner); verr != nil {
					err = fmt.Errorf("%s (%s): %w", fd.Name(), a.TypeUrl, verr)
					return false
				}
				return true
			}
			if verr := validateAnys(sub); verr != nil {
				err = verr
				return false
			}
			return true
		}
		switch {
		case fd.IsList():
			l := v.List()
			for i := 0; i < l.Len(); i++ {
				if !check(l.Get(i).Message()) {
					return false
				}
			}
		case fd.IsMap():
			if fd.MapValue().Message() == nil {
				return true
			}
			v.Map().Range(func(_ protoreflect.MapKey, mv protoreflect.Value) bool {
				return check(mv.Message())
			})
			return err == nil
		default:
			return check(v.Message())
		}
		return true
	})
	return err
}
