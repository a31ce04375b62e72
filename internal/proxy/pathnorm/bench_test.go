package pathnorm

import "testing"

func BenchmarkPath(b *testing.B) {
	for _, c := range []struct {
		name, path string
	}{
		{"clean", "/api/v1/users/42?expand=true"},
		{"dirty", "/api/./v1//users/%2e%2e/users/%34%32%2Fx?expand=true"},
	} {
		b.Run(c.name, func(b *testing.B) {
			b.ReportAllocs()
			for i := 0; i < b.N; i++ {
				if _, _, err := Path(c.path, strict); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}
