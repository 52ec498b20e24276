#!/usr/bin/env bash
# Builds the real Kubernetes components the cluster tests run, from their Go modules, at the
# versions pinned in the go.mod files beside this script (one module per component family: see
# the comment at the top of each go.mod). Nothing is vendored and no binary is committed: Go's
# module and build caches plus a binary directory per component and version do the caching,
#   ${PGR_TOOLS_CACHE:-$HOME/.cache/pg-reflinker/tools}/<component>-<version>/<binary>
# A component is rebuilt only when its binary is missing or its module's go.mod/go.sum changed
# (a stamp beside the binary), so a second run takes seconds.
#
#   test/cluster/tools/build.sh [component...]   (default: all)
#
# Components: kube-apiserver kube-controller-manager etcd csi-provisioner csi-snapshotter
# snapshot-controller csi-sanity helm helm-strict-render (helm's engine with missingkey=error,
# tools/helm/cmd/helm-strict-render). Builds run under `nice -n 19` with at most
# PGR_GO_PARALLEL (default 2) parallel compile steps, so they do not starve other test suites.
# Writes $PGR_TOOLS_CACHE/manifest.json and manifest.env (component -> binary, version, plus
# the VolumeSnapshot CRD directory) for the tests. The last line printed always begins
# `real components:`; the exit status is non-zero when any requested component failed.
set -uo pipefail

here=$(cd "$(dirname "$0")" && pwd)
# The machine's Go (1.26) lives in /usr/local/go; Debian's golang-go (1.19, /usr/bin/go) is too old.
[ -x /usr/local/go/bin/go ] && export PATH=/usr/local/go/bin:$PATH
command -v go >/dev/null 2>&1 || { echo "build.sh: no Go toolchain (go) on PATH or in /usr/local/go/bin" >&2; exit 1; }
echo "using $(command -v go) ($(go env GOVERSION))"
cache=${PGR_TOOLS_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/pg-reflinker/tools}
mkdir -p "$cache"
export GOFLAGS="-p=${PGR_GO_PARALLEL:-2} -mod=readonly -trimpath -buildvcs=false"

# component | module dir | package to build | module whose version names the component | ldflags (@V@ = version)
components=(
  "kube-apiserver|kube|k8s.io/kubernetes/cmd/kube-apiserver|k8s.io/kubernetes|KUBE"
  "kube-controller-manager|kube|k8s.io/kubernetes/cmd/kube-controller-manager|k8s.io/kubernetes|KUBE"
  "etcd|kube|./cmd/etcd|go.etcd.io/etcd/server/v3|"
  "csi-provisioner|csi-provisioner|github.com/kubernetes-csi/external-provisioner/v6/cmd/csi-provisioner|github.com/kubernetes-csi/external-provisioner/v6|-X main.version=@V@"
  "csi-snapshotter|csi-snapshotter|github.com/kubernetes-csi/external-snapshotter/v8/cmd/csi-snapshotter|github.com/kubernetes-csi/external-snapshotter/v8|-X main.version=@V@"
  "snapshot-controller|csi-snapshotter|github.com/kubernetes-csi/external-snapshotter/v8/cmd/snapshot-controller|github.com/kubernetes-csi/external-snapshotter/v8|-X main.version=@V@"
  "csi-sanity|csi-sanity|github.com/kubernetes-csi/csi-test/v5/cmd/csi-sanity|github.com/kubernetes-csi/csi-test/v5|-X main.VERSION=@V@"
  "helm|helm|helm.sh/helm/v4/cmd/helm|helm.sh/helm/v4|-X helm.sh/helm/v4/internal/version.version=@V@"
  "helm-strict-render|helm|./cmd/helm-strict-render|helm.sh/helm/v4|"
)

# The version a go.mod pins for a module (from its require lines; no go command needed).
pinned() { awk -v m="$2" '($1 == m || ($1 == "require" && $2 == m)) { v = ($1 == m) ? $2 : $3; print v; exit }' "$here/$1/go.mod"; }

kube_ldflags() { # what the Kubernetes release build stamps, so `--version` and /version tell the truth
  local v=$1 minor=${1#v*.}
  minor=${minor%%.*}
  local major=${v#v}
  major=${major%%.*}
  echo "-X k8s.io/component-base/version.gitVersion=$v -X k8s.io/component-base/version.gitMajor=$major" \
       "-X k8s.io/component-base/version.gitMinor=$minor -X k8s.io/component-base/version.gitTreeState=clean" \
       "-X k8s.io/component-base/version.buildDate=1970-01-01T00:00:00Z" \
       "-X k8s.io/client-go/pkg/version.gitVersion=$v -X k8s.io/client-go/pkg/version.gitMajor=$major" \
       "-X k8s.io/client-go/pkg/version.gitMinor=$minor"
}

wanted=("$@")
for w in "${wanted[@]}"; do
  printf '%s\n' "${components[@]}" | grep -q "^$w|" || { echo "build.sh: unknown component '$w'" >&2; exit 2; }
done
want() { [ ${#wanted[@]} -eq 0 ] && return 0; local w; for w in "${wanted[@]}"; do [ "$w" = "$1" ] && return 0; done; return 1; }

start_all=$(date +%s)
summary=()
failed=0
json_entries=()
env_lines=()
for entry in "${components[@]}"; do
  IFS='|' read -r name dir pkg vmod ldf <<<"$entry"
  version=$(pinned "$dir" "$vmod")
  if [ -z "$version" ]; then
    want "$name" && { echo "build.sh: $dir/go.mod pins no version of $vmod" >&2; summary+=("$name FAILED(no version)"); failed=1; }
    continue
  fi
  out="$cache/$name-$version"
  bin="$out/$name"
  # A main package of our own (./cmd/...) is part of what the binary is built from.
  own=(); [[ $pkg == ./* ]] && own=("$here/$dir/$pkg"/*.go)
  stamp="$(cat "$here/$dir/go.mod" "$here/$dir/go.sum" "${own[@]}" | sha256sum | cut -c1-16) $(go env GOVERSION 2>/dev/null)"
  if [ -x "$bin" ] && [ "$(cat "$out/.stamp" 2>/dev/null)" = "$stamp" ]; then
    want "$name" && echo "$name $version: cached at $bin"
  elif ! want "$name"; then
    continue # not asked for and not built: left out of the manifest
  else
    if [ "$ldf" = KUBE ]; then ldf=$(kube_ldflags "$version"); else ldf=${ldf//@V@/$version}; fi
    echo "$name $version: building $pkg (module $dir) ..."
    t0=$(date +%s)
    mkdir -p "$out"
    if (cd "$here/$dir" && nice -n 19 go build -ldflags "-s -w $ldf" -o "$bin.tmp" "$pkg"); then
      mv -f "$bin.tmp" "$bin"
      echo "$stamp" >"$out/.stamp"
      echo "$name $version: built in $(( $(date +%s) - t0 )) s at $bin"
    else
      rm -f "$bin.tmp"
      echo "$name $version: BUILD FAILED after $(( $(date +%s) - t0 )) s (see the go output above)" >&2
      summary+=("$name $version FAILED")
      failed=1
      continue
    fi
  fi
  want "$name" && summary+=("$name $version")
  json_entries+=("\"$name\": {\"version\": \"$version\", \"path\": \"$bin\"}")
  env_lines+=("PGR_$(echo "$name" | tr 'a-z-' 'A-Z_')=$bin")
done

# The VolumeSnapshot CRDs ship in the client/v8 module of external-snapshotter: read them from the
# module cache (downloaded on demand), never copied into the repository.
if [ -d "$cache/csi-snapshotter-$(pinned csi-snapshotter github.com/kubernetes-csi/external-snapshotter/v8)" ] || want csi-snapshotter || want snapshot-controller; then
  crds=$(cd "$here/csi-snapshotter" && go mod download -json github.com/kubernetes-csi/external-snapshotter/client/v8 2>/dev/null |
    sed -n 's/^\s*"Dir": "\(.*\)",\?$/\1/p')
  if [ -n "$crds" ] && [ -f "$crds/config/crd/snapshot.storage.k8s.io_volumesnapshots.yaml" ]; then
    crds="$crds/config/crd"
    echo "VolumeSnapshot CRDs: $crds"
    json_entries+=("\"snapshot-crds\": {\"version\": \"$(pinned csi-snapshotter github.com/kubernetes-csi/external-snapshotter/client/v8)\", \"path\": \"$crds\"}")
    env_lines+=("PGR_SNAPSHOT_CRDS=$crds")
  else
    echo "build.sh: VolumeSnapshot CRDs not found in the module cache" >&2
    failed=1
  fi
fi

# The manifest lists every component built at the pinned version, asked for this time or not.
{ echo "{"; printf '  %s,\n' "${json_entries[@]}" | sed '$ s/,$//'; echo "}"; } >"$cache/manifest.json.tmp" &&
  mv -f "$cache/manifest.json.tmp" "$cache/manifest.json"
printf '%s\n' "${env_lines[@]}" >"$cache/manifest.env"
echo "manifest: $cache/manifest.json"
echo "total: $(( $(date +%s) - start_all )) s"
echo "real components: $(IFS=,; echo "${summary[*]}" | sed 's/,/, /g')"
exit $failed
