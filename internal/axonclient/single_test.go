package axonclient_test

import (
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/axarchive/axarchive/internal/axonclient"
	"github.com/axarchive/axarchive/internal/axontest"
)

// A context other than default is refused on a server that serves default for every name (SE), and only
// there; "default" costs no call.
func TestCheckContext(t *testing.T) {
	se := axontest.NewServer(t, axontest.WithSingleContext())
	err := dial(t, se, axonclient.Config{Context: "orders"}).CheckContext(testCtx(t))
	require.ErrorIs(t, err, axonclient.ErrSingleContext)
	assert.Equal(t, `check the context: context "orders": the server at `+se.Addr()+` has one context, "default", and serves it whatever context a call names (Axon Server SE)`, err.Error())
	fresh := axontest.NewServer(t, axontest.WithSingleContext())
	require.NoError(t, dial(t, fresh, axonclient.Config{}).CheckContext(testCtx(t)))
	require.NoError(t, dial(t, fresh, axonclient.Config{Context: "default"}).CheckContext(testCtx(t)))
	assert.Zero(t, fresh.Calls(axontest.MethodGetLastToken), "the probe for default asks nothing")

	// With access control the probe carries the token, and still tells.
	seAuth := axontest.NewServer(t, axontest.WithSingleContext(), axontest.WithAccessToken("s"))
	require.ErrorIs(t, dial(t, seAuth, axonclient.Config{Context: "orders", Token: "s"}).CheckContext(testCtx(t)), axonclient.ErrSingleContext)

	// EE: ContextAdminService answers.
	ee := axontest.NewServer(t)
	require.NoError(t, dial(t, ee, axonclient.Config{Context: "orders"}).CheckContext(testCtx(t)))
	// An EE without the admin service, or refusing this caller, tells a made-up context apart.
	limited := axontest.NewServer(t, axontest.WithContexts("default", "orders"))
	require.NoError(t, dial(t, limited, axonclient.Config{Context: "orders"}).CheckContext(testCtx(t)))
	assert.Equal(t, []string{"orders"}, ee.Contexts(), "the probe creates no context")
}
