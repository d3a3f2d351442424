package apply

import (
	"testing"

	"github.com/hoistdev/hoist/test/fixture"
)

func TestMain(m *testing.M) { fixture.Main(m) }
