#!/usr/bin/python3
"""Rewrites upstream CRD and webhook manifests (read at run time from the Go module cache) for the
local test world, and prints them as one JSON `List` for `kubectl apply --server-side -f -`.

What it changes, and why (the same as envtest / clusterctl init do):
- `--label k=v`: adds labels to every object (clusterctl's provider and inventory labels, CAPI
  contract labels).
- `--conversion-url URL --ca-file F`: CRDs serving more than one version get a Webhook conversion
  at URL (a local manager's `/convert`) with the world CA as caBundle.
- `--webhook-url-base URL --name-suffix S`: webhook configurations get `clientConfig.url` =
  URL + the service path (no in-cluster Service can route to a local process) and the caBundle;
  their names get suffix S, since CAPI's three managers generate the same configuration names.
"""
import argparse
import base64
import json
import sys

import yaml

# libyaml's loader is ~10x faster on the large CAPI CRDs
LOADER = getattr(yaml, "CSafeLoader", yaml.SafeLoader)


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("files", nargs="+")
    p.add_argument("--label", action="append", default=[])
    p.add_argument("--conversion-url")
    p.add_argument("--webhook-url-base")
    p.add_argument("--name-suffix", default="")
    p.add_argument("--ca-file")
    a = p.parse_args()
    ca = base64.b64encode(open(a.ca_file, "rb").read()).decode() if a.ca_file else None
    items = []
    for f in a.files:
        for doc in yaml.load_all(open(f), Loader=LOADER):
            if not doc:
                continue
            meta = doc.setdefault("metadata", {})
            labels = meta.setdefault("labels", {}) or {}
            for kv in a.label:
                k, _, v = kv.partition("=")
                labels[k] = v
            meta["labels"] = labels
            kind = doc.get("kind")
            if kind == "CustomResourceDefinition" and a.conversion_url:
                if len(doc["spec"].get("versions", [])) > 1:
                    doc["spec"]["conversion"] = {
                        "strategy": "Webhook",
                        "webhook": {
                            "conversionReviewVersions": ["v1", "v1beta1"],
                            "clientConfig": {"url": a.conversion_url, "caBundle": ca},
                        },
                    }
            if kind in ("MutatingWebhookConfiguration", "ValidatingWebhookConfiguration"):
                meta["name"] = meta["name"] + a.name_suffix
                for w in doc.get("webhooks", []):
                    svc = w["clientConfig"].pop("service", {}) or {}
                    w["clientConfig"]["url"] = a.webhook_url_base + svc.get("path", "/")
                    w["clientConfig"]["caBundle"] = ca
            items.append(doc)
    json.dump({"apiVersion": "v1", "kind": "List", "items": items}, sys.stdout)


if __name__ == "__main__":
    main()
