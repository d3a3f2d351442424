package clusterfile

import (
	"fmt"
	"strings"
)

// SetEnv sets KEY=VALUE pairs over the env of the cluster and of every
// node, as the last word: hoist delete -e gives the clean hooks the values
// a kept Clusterfile left out. Keys are variable names, as in spec.env.
func (c *Cluster) SetEnv(pairs []string) error {
	for _, kv := range pairs {
		// Only the key is ever shown: the value may be a secret.
		k, v, ok := strings.Cut(kv, "=")
		if !ok {
			return fmt.Errorf("%q: want KEY=VALUE", k)
		}
		if !IsEnvName(k) {
			return fmt.Errorf("key %q is not a variable name ([A-Za-z_][A-Za-z0-9_]*): the env is exported to the nodes' shells", k)
		}
		if c.Env == nil {
			c.Env = map[string]string{}
		}
		c.Env[k] = v
		for i := range c.Nodes {
			if c.Nodes[i].Env == nil {
				c.Nodes[i].Env = map[string]string{}
			}
			c.Nodes[i].Env[k] = v
		}
	}
	return nil
}
