// etcd built from go.etcd.io/etcd/server/v3 at the version pinned in go.mod: the same entry
// point as the upstream etcd binary (go.etcd.io/etcd/v3's main.go calls etcdmain.Main).
package main

import (
	"os"

	"go.etcd.io/etcd/server/v3/etcdmain"
)

func main() {
	etcdmain.Main(os.Args)
}
