#!/usr/bin/env python3
"""Writes N generated TLS-RPT reports (RFC 8460 JSON, gzipped) for benches/tlsrpt.sh.

Deterministic (seeded): 40 reporting organisations, 30 days, 4 MX hosts, 1-2 policies per
report (tlsa or sts) and 0-3 failure details each, result types drawn from RFC 8460 §4.3.
Usage: tlsrpt_gen.py N DIR
"""
import gzip
import json
import os
import random
import sys

RESULTS = ["starttls-not-supported", "certificate-host-mismatch", "certificate-expired",
           "certificate-not-trusted", "validation-failure", "tlsa-invalid", "dnssec-invalid",
           "dane-required", "sts-policy-fetch-error", "sts-policy-invalid", "sts-webpki-invalid"]
MX = ["mx1.example.net", "mx2.example.net", "mx3.example.net", "mx4.example.net"]


def report(i, rng):
    day = 1 + i % 30
    start = f"2026-11-{day:02d}T00:00:00Z"
    end = f"2026-11-{day:02d}T23:59:59Z"
    policies = []
    for _ in range(rng.randint(1, 2)):
        if rng.random() < 0.5:
            mx = rng.choice(MX)
            policy = {"policy-type": "tlsa", "policy-string": ["3 1 1 " + "ab" * 32],
                      "policy-domain": mx, "mx-host": [mx]}
        else:
            policy = {"policy-type": "sts",
                      "policy-string": ["version: STSv1", "mode: enforce", "mx: *.example.net",
                                        "max_age: 86400"],
                      "policy-domain": "example.net", "mx-host": ["*.example.net"]}
        failures = []
        for _ in range(rng.randint(0, 3)):
            failures.append({
                "result-type": rng.choice(RESULTS),
                "sending-mta-ip": f"192.0.2.{rng.randint(1, 254)}",
                "receiving-mx-hostname": rng.choice(MX),
                "receiving-ip": f"198.51.100.{rng.randint(1, 254)}",
                "failed-session-count": rng.randint(1, 20),
            })
        entry = {"policy": policy,
                 "summary": {"total-successful-session-count": rng.randint(0, 5000),
                             "total-failure-session-count": sum(f["failed-session-count"] for f in failures)}}
        if failures:
            entry["failure-details"] = failures
        policies.append(entry)
    org = f"Reporter {i % 40}"
    return {"organization-name": org, "date-range": {"start-datetime": start, "end-datetime": end},
            "contact-info": f"tlsrpt@reporter{i % 40}.example", "report-id": f"{start}_{i}",
            "policies": policies}


def main():
    n, out = int(sys.argv[1]), sys.argv[2]
    os.makedirs(out, exist_ok=True)
    rng = random.Random(8460)
    for i in range(n):
        data = json.dumps(report(i, rng)).encode()
        with open(os.path.join(out, f"{i:06d}.json.gz"), "wb") as f:
            f.write(gzip.compress(data, mtime=0))


if __name__ == "__main__":
    main()
