#!/usr/bin/env python3
"""Writes hookd's own JSON test corpus: tests/data/payloads/*.json (valid
JSON, every trait a relay of webhook bodies must survive) and
tests/data/invalid/*.json (deliberately broken or out-of-range bodies that
the strict parser must refuse), plus a README.md in each folder saying what
every file exercises.

The files are committed; this script is how they were made, and how to
change them: edit it, run `python3 tests/data/make_payloads.py` from the
repository root, review the diff, commit both. Deterministic (fixed seed),
stdlib only. All webhook bodies are invented: realistic shapes, made-up
values.

Number and escape spellings matter to the tests, so the trait files are
written as literal text here, not produced by json.dumps.
"""
import json
import os
import random
import sys

ROOT = os.path.dirname(os.path.abspath(__file__))
OK_DIR = os.path.join(ROOT, "payloads")
BAD_DIR = os.path.join(ROOT, "invalid")

rnd = random.Random(20261129)

ok_files = {}   # name -> (text, what it exercises)
bad_files = {}


def ok(name, text, what):
    ok_files[name] = (text, what)


def bad(name, text, what):
    bad_files[name] = (text, what)


def dumps(v, compact=False, ascii_only=False):
    if compact:
        return json.dumps(v, separators=(",", ":"), ensure_ascii=ascii_only)
    return json.dumps(v, indent=2, ensure_ascii=ascii_only) + "\n"


# ---- numbers -------------------------------------------------------------

ok("numbers-big-integers", """{
  "u64_max": 18446744073709551615,
  "i64_min": -9223372036854775808,
  "i64_max": 9223372036854775807,
  "rounded_id": 788032119674292900,
  "exact_id": 820982911946154508,
  "twitter_id": 505874924095815681,
  "two_pow_53": 9007199254740992,
  "two_pow_53_plus_1": 9007199254740993,
  "neg_two_pow_53_plus_1": -9007199254740993,
  "sixteen_digits": 1234567890123456,
  "fifteen_digits": 999999999999999,
  "twenty_digits": 12345678901234567890,
  "ids": [18446744073709551615, 788032119674292900, 141249953214522980, 706405506930370000],
  "gid": "gid://shopify/Order/820982911946154508"
}
""", "integers beyond 2^53 with 16 to 20 digits (u64 max, i64 min/max, ids a "
     "JavaScript hop rounded), which must come back digit for digit")

ok("numbers-floats", """{
  "longitude": 139.70372892916203,
  "latitude": 35.65910807942215,
  "point_one_plus_point_two": 0.30000000000000004,
  "tenth": 0.1,
  "price": 9.95,
  "duration": 0.9678,
  "cvss": 7.5,
  "one_point_zero": 1.0,
  "trailing_zero": 100.50,
  "negative": -1.5,
  "third": 0.3333333333333333,
  "pi": 3.141592653589793,
  "max_double": 1.7976931348623157e308,
  "min_normal": 2.2250738585072014e-308,
  "min_subnormal": 5e-324,
  "many": [0.1, 0.2, 0.7, 1.1, 2.675, 1.005, 123456.789, -0.000001]
}
""", "floats that need 16 or 17 significant digits (cJSON's %1.15g printer "
     "changes them), integral floats (1.0), the ends of the double range")

ok("numbers-exponents", """{
  "tiny": 1e-7,
  "avogadro": 6.02E+23,
  "pushed_at": 1.417566161e+09,
  "hundred": [1E2, 1e+2, 1e2, 100],
  "big_float": 1.5e300,
  "neg_tiny": -1e-21,
  "e21": 1e21,
  "half_milli": 0.5e-3,
  "zero_exp": 0e0,
  "two_and_a_half": 25E-1
}
""", "exponent forms (e/E, signed and unsigned); integral values written "
     "with an exponent (1.417566161e+09, 1E2) must come back as plain digits")

ok("numbers-negative-zero", """{"neg_zero": -0, "neg_zero_float": -0.0, "neg_zero_exp": -0e5,
 "zeros": [-0, 0, -0.0, 0.0], "pos_zero": 0}
""", "negative zero in every spelling: the sign must survive")

# ---- every JSON type at top level ---------------------------------------

ok("top-empty-object", "{}", "the smallest body: {} (no newline)")
ok("top-empty-array", "[]\n", "an empty array at top level")
ok("top-array", '[1, "two", 3.5, true, false, null, {"k": []}, [-0], 18446744073709551615]\n',
   "an array at top level holding every type")
ok("top-string", '"a string at top level, with escapes \\n \\u00e9 \\ud83d\\ude00"\n',
   "a string at top level")
ok("top-number", "42\n", "an integer at top level")
ok("top-number-big", "18446744073709551615", "an integer beyond 2^53 at top level (no newline)")
ok("top-number-float", "-0.30000000000000004\n", "a 17-digit float at top level")
ok("top-true", "true\n", "true at top level")
ok("top-false", "false", "false at top level (no newline)")
ok("top-null", "null\n", "null at top level")

# ---- strings -------------------------------------------------------------

ctl = "".join("\\u%04x" % c for c in range(1, 0x20))
ok("strings-escapes", """{
  "short_escapes": "quote \\" backslash \\\\ slash \\/ bs \\b ff \\f nl \\n cr \\r tab \\t",
  "gitlab_style": "a \\u0026 b\\u0009c",
  "controls": "%s",
  "del": "\\u007f",
  "line_separators": "\\u2028\\u2029",
  "pair": "\\ud83d\\ude00",
  "pair_upper_hex": "\\uD83D\\uDE00",
  "pairs": "\\ud83c\\udf89 \\ud834\\udd1e \\udbff\\udfff",
  "raw_emoji": "\xf0\x9f\x98\x80",
  "bmp": "\\u00e9\\u00fc\\u4e2d\\u6587\\u20ac",
  "mixed": "\\u6771\\u4eac \xe6\x9d\xb1\xe4\xba\xac",
  "\\u006bey": "a member name written with an escape",
  "": "the empty member name",
  "empty": ""
}
""".replace("%s", ctl).encode("latin-1").decode("utf-8"),
   "every escape: the two-character ones, \\u0001-\\u001f, \\u007f, "
   "U+2028/9, surrogate pairs (lower and upper hex, U+10FFFF), escaped names, "
   "the empty name")

ok("strings-unicode", dumps({
    "ja": "東京都渋谷区道玄坂一丁目",
    "zh": "你好，世界",
    "ko": "안녕하세요",
    "ar": "مرحبا بالعالم",
    "he": "שלום עולם",
    "de": "Grüße aus Köln – „Anführungszeichen“",
    "fr": "Œuvre d’art — déjà vu…",
    "emoji": "🎉🚀👍🏽 👨‍👩‍👧‍👦 🇯🇵",
    "math": "∀x∈ℝ: x² ≥ 0",
    "combining": "e\u0301 n\u0303",
    "nbsp_bom": "a\u00a0b\ufeffc",
    "名前": "a non-ASCII member name",
    "🔑": "an astral member name",
}), "raw UTF-8 of 1 to 4 bytes (CJK, RTL, emoji with ZWJ and modifiers, "
    "combining marks, U+FEFF inside a string), non-ASCII member names")


def words(n, pool):
    return " ".join(rnd.choice(pool) for _ in range(n))


LOREM = ("lorem ipsum dolor sit amet consectetur adipiscing elit sed do eiusmod "
         "tempor incididunt ut labore et dolore magna aliqua webhook payload "
         "relay retry delivery signature").split()
UNI = "東京 大阪 Grüße Köln déjà 안녕 мир 🎉 🚀 שלום ∑ café naïve".split()

long_ascii = "\n".join("%05d %s" % (i, words(12, LOREM)) for i in range(1500))
long_utf8 = " ".join(rnd.choice(UNI) for _ in range(3000))
ok("strings-long", dumps({
    "id": "evt_long_1",
    "body": long_ascii,
    "body_utf8": long_utf8,
    "tail": "end",
}), "a string over 100 KB (with \\n escapes) and a long one of multi-byte "
    "UTF-8: buffers that must grow")

# ---- structure -----------------------------------------------------------

DEPTH = 500
opens, closes = [], []
for i in range(DEPTH - 1):
    if i % 2 == 0:
        opens.append('{"d":')
        closes.append("}")
    else:
        opens.append("[")
        closes.append("]")
ok("nesting-deep-500", "".join(opens) + '["leaf", 1, null]' + "".join(reversed(closes)) + "\n",
   "500 levels of alternating objects and arrays (cJSON's limit is 1000)")

ok("containers-empty", """{
  "object": {},
  "array": [],
  "string": "",
  "nested": [[], [{}], {"x": []}, [[[]]], {"y": {"z": {}}}],
  "spaced": [ ],
  "spaced_object": { }
}
""", "empty objects and arrays at every place, with and without inner spaces")

ok("keys-duplicate", """{
  "a": 1,
  "b": {"c": true, "c": false},
  "a": "two",
  "list": [{"id": 1, "id": 2}],
  "a": null
}
""", "duplicate member names (RFC 8259 leaves it to the parser): every "
     "member must come back, in order")

# ---- realistic webhooks (invented values) --------------------------------


def hexid(n=40):
    return "".join(rnd.choice("0123456789abcdef") for _ in range(n))


def iso(day, h, m, s, tz="Z"):
    return "2026-03-%02dT%02d:%02d:%02d%s" % (day, h, m, s, tz)


def gh_user(login, uid, kind="User"):
    base = "https://api.github.com/users/" + login
    return {
        "name": login.capitalize(), "email": login + "@users.noreply.example.com",
        "login": login, "id": uid, "node_id": "MDQ6VXNlcj" + str(uid),
        "avatar_url": "https://avatars.example.com/u/%d?v=4" % uid, "gravatar_id": "",
        "url": base, "html_url": "https://github.com/" + login,
        "followers_url": base + "/followers",
        "following_url": base + "/following{/other_user}",
        "gists_url": base + "/gists{/gist_id}",
        "starred_url": base + "/starred{/owner}{/repo}",
        "subscriptions_url": base + "/subscriptions",
        "organizations_url": base + "/orgs", "repos_url": base + "/repos",
        "events_url": base + "/events{/privacy}",
        "received_events_url": base + "/received_events",
        "type": kind, "site_admin": False,
    }


def gh_repo(owner, name, rid, epoch_dates):
    full = owner["login"] + "/" + name
    api = "https://api.github.com/repos/" + full
    r = {
        "id": rid, "node_id": "MDEwOlJlcG9zaXRvcnk" + str(rid), "name": name,
        "full_name": full, "private": False, "owner": owner,
        "html_url": "https://github.com/" + full,
        "description": "Relays webhooks to plugins — fast, small, boring 🚀",
        "fork": False, "url": api,
    }
    for k in ("forks", "keys", "collaborators", "teams", "hooks", "issue_events", "events",
              "assignees", "branches", "tags", "blobs", "git_tags", "git_refs", "trees",
              "statuses", "languages", "stargazers", "contributors", "subscribers",
              "subscription", "commits", "git_commits", "comments", "issue_comment",
              "contents", "compare", "merges", "archive", "downloads", "issues", "pulls",
              "milestones", "notifications", "labels", "releases", "deployments"):
        r[k + "_url"] = api + "/" + k + ("{/sha}" if k in ("commits", "statuses") else "")
    r.update({
        "created_at": 1767225600 if epoch_dates else iso(1, 9, 0, 0),
        "updated_at": iso(20, 8, 1, 2),
        "pushed_at": 1774000000 if epoch_dates else iso(20, 8, 1, 1),
        "git_url": "git://github.com/%s.git" % full,
        "ssh_url": "git@github.com:%s.git" % full,
        "clone_url": "https://github.com/%s.git" % full,
        "svn_url": "https://github.com/" + full, "homepage": None,
        "size": 2291, "stargazers_count": 42, "watchers_count": 42, "language": "C",
        "has_issues": True, "has_projects": False, "has_downloads": True,
        "has_wiki": False, "has_pages": False, "has_discussions": False,
        "forks_count": 3, "mirror_url": None, "archived": False, "disabled": False,
        "open_issues_count": 8, "license": {"key": "mit", "name": "MIT License",
                                            "spdx_id": "MIT", "url": None,
                                            "node_id": "MDc6TGljZW5zZTEz"},
        "allow_forking": True, "is_template": False, "web_commit_signoff_required": False,
        "topics": ["webhooks", "libevent", "plugins"], "visibility": "public",
        "forks": 3, "open_issues": 8, "watchers": 42, "default_branch": "main",
    })
    return r


def gh_commit(i, author):
    sha = hexid()
    return {
        "id": sha, "tree_id": hexid(), "distinct": True,
        "message": "Fix the retry timer (#%d)\n\nThe deadline was armed twice; "
                   "arm it once.\n\nCo-authored-by: José Müller <jose@example.com>" % (100 + i),
        "timestamp": iso(20, 10, i, 5, "+02:00"),
        "url": "https://github.com/acme/hookd/commit/" + sha,
        "author": {"name": author["name"], "email": author["email"],
                   "username": author["login"]},
        "committer": {"name": "GitHub", "email": "noreply@github.com",
                      "username": "web-flow"},
        "added": ["tests/data/new_%d.json" % i] if i % 2 else [],
        "removed": [],
        "modified": ["host/dispatch.c", "host/http.c", "README.md"][: 1 + i % 3],
    }


alice = gh_user("alice", 5811)
acme = gh_user("acme", 93001, "Organization")
commits = [gh_commit(i, alice) for i in range(3)]
push = {
    "ref": "refs/heads/main", "before": hexid(), "after": commits[-1]["id"],
    "repository": gh_repo(acme, "hookd", 600123456, True),
    "pusher": {"name": "alice", "email": "alice@users.noreply.example.com"},
    "organization": {k: acme[k] for k in ("login", "id", "node_id", "url", "repos_url",
                                          "events_url", "avatar_url")},
    "sender": alice,
    "created": False, "deleted": False, "forced": False, "base_ref": None,
    "compare": "https://github.com/acme/hookd/compare/%s...%s" % ("a" * 12, "b" * 12),
    "commits": commits, "head_commit": commits[-1],
}
push["organization"]["description"] = None
ok("webhook-github-push", dumps(push),
   "GitHub push: three commits, \\n in messages, emoji and accents raw, epoch "
   "integers next to ISO dates, nulls")

bob = gh_user("bob", 77, "User")
labels = [{"id": 208045946 + i, "node_id": "MDU6TGFiZWwyMDgwNDU5NDY=", "url":
           "https://api.github.com/repos/acme/hookd/labels/" + n, "name": n,
           "color": c, "default": i == 0, "description": d}
          for i, (n, c, d) in enumerate([("bug", "d73a4a", "Something is wrong"),
                                         ("perf", "fbca04", None),
                                         ("needs-review", "0e8a16", "Waiting on review")])]
base_repo = gh_repo(acme, "hookd", 600123456, False)
head_repo = gh_repo(bob, "hookd", 600999001, False)
head_repo["fork"] = True
pr = {
    "action": "opened", "number": 1347,
    "pull_request": {
        "url": "https://api.github.com/repos/acme/hookd/pulls/1347", "id": 1973470100,
        "node_id": "PR_kwDOABCD5c51oCVU", "html_url": "https://github.com/acme/hookd/pull/1347",
        "diff_url": "https://github.com/acme/hookd/pull/1347.diff",
        "patch_url": "https://github.com/acme/hookd/pull/1347.patch",
        "issue_url": "https://api.github.com/repos/acme/hookd/issues/1347",
        "number": 1347, "state": "open", "locked": False,
        "title": "Reactor: pause the listener on EMFILE instead of spinning",
        "user": bob,
        "body": "## What\n\nOn `EMFILE` the listener now pauses for 100 ms.\n\n"
                "## Why\n\nlibevent logs and retries `accept()` at 100 % CPU.\n\n"
                "- [x] tests\n- [ ] docs\n\n> quoted \"text\" with a tab:\there\n",
        "created_at": iso(21, 7, 30, 0), "updated_at": iso(21, 7, 30, 0),
        "closed_at": None, "merged_at": None, "merge_commit_sha": None,
        "assignee": None, "assignees": [], "requested_reviewers": [alice],
        "requested_teams": [], "labels": labels, "milestone": None, "draft": False,
        "commits_url": "https://api.github.com/repos/acme/hookd/pulls/1347/commits",
        "review_comments_url": "https://api.github.com/repos/acme/hookd/pulls/1347/comments",
        "review_comment_url": "https://api.github.com/repos/acme/hookd/pulls/comments{/number}",
        "comments_url": "https://api.github.com/repos/acme/hookd/issues/1347/comments",
        "statuses_url": "https://api.github.com/repos/acme/hookd/statuses/" + hexid(),
        "head": {"label": "bob:emfile", "ref": "emfile", "sha": hexid(), "user": bob,
                 "repo": head_repo},
        "base": {"label": "acme:main", "ref": "main", "sha": hexid(), "user": acme,
                 "repo": base_repo},
        "_links": {k: {"href": "https://api.github.com/repos/acme/hookd/" + k}
                   for k in ("self", "html", "issue", "comments", "review_comments",
                             "review_comment", "commits", "statuses")},
        "author_association": "CONTRIBUTOR", "auto_merge": None, "active_lock_reason": None,
        "merged": False, "mergeable": None, "rebaseable": None, "mergeable_state": "unknown",
        "merged_by": None, "comments": 0, "review_comments": 0,
        "maintainer_can_modify": True, "commits": 4, "additions": 212, "deletions": 37,
        "changed_files": 6,
    },
    "repository": base_repo, "organization": {"login": "acme", "id": 93001},
    "sender": bob,
}
ok("webhook-github-pull-request", dumps(pr),
   "GitHub pull_request opened: two full repository objects, labels, many "
   "nulls, markdown body with escapes (~25 KB)")


def stripe_line(i):
    return {
        "id": "il_1Nv%06dABCDEF" % i, "object": "line_item", "amount": 1999 * (i + 1),
        "amount_excluding_tax": 1999 * (i + 1), "currency": "eur",
        "description": "%d × Pro plan (at €19.99 / month)" % (i + 1),
        "discount_amounts": [], "discountable": True, "discounts": [], "livemode": False,
        "metadata": {}, "period": {"end": 1777000000 + i, "start": 1774400000 + i},
        "plan": {"id": "price_1NvPro", "object": "plan", "active": True,
                 "aggregate_usage": None, "amount": 1999, "amount_decimal": "1999",
                 "billing_scheme": "per_unit", "created": 1767225600, "currency": "eur",
                 "interval": "month", "interval_count": 1, "livemode": False,
                 "metadata": {}, "nickname": None, "product": "prod_Pro",
                 "tiers_mode": None, "transform_usage": None, "trial_period_days": None,
                 "usage_type": "licensed"},
        "proration": False, "proration_details": {"credited_items": None},
        "quantity": i + 1, "subscription": "sub_1NvABC", "subscription_item": "si_Ov%d" % i,
        "tax_amounts": [], "tax_rates": [], "type": "subscription",
        "unit_amount_excluding_tax": "1999",
    }


invoice = {
    "id": "evt_1NvQ2bKZ0dZRqLEK", "object": "event", "api_version": "2023-10-16",
    "created": 1774400123,
    "data": {"object": {
        "id": "in_1NvQ2aKZ0dZRqLEK", "object": "invoice", "account_country": "DE",
        "account_name": "Acme GmbH", "account_tax_ids": None, "amount_due": 5997,
        "amount_paid": 5997, "amount_remaining": 0, "amount_shipping": 0,
        "application": None, "application_fee_amount": None, "attempt_count": 1,
        "attempted": True, "auto_advance": False,
        "automatic_tax": {"enabled": False, "status": None},
        "billing_reason": "subscription_cycle", "charge": "ch_3NvQ2b",
        "collection_method": "charge_automatically", "created": 1774400100,
        "currency": "eur", "custom_fields": None, "customer": "cus_OvAbc",
        "customer_address": {"city": "Köln", "country": "DE", "line1": "Domkloster 4",
                             "line2": None, "postal_code": "50667", "state": None},
        "customer_email": "jenny.rosen@example.com", "customer_name": "Jenny Rosen",
        "customer_phone": None, "customer_shipping": None, "customer_tax_exempt": "none",
        "customer_tax_ids": [], "default_payment_method": None, "default_source": None,
        "default_tax_rates": [], "description": None, "discount": None, "discounts": [],
        "due_date": None, "ending_balance": 0, "footer": None, "from_invoice": None,
        "hosted_invoice_url": "https://invoice.stripe.example.com/i/acct_1/test_YWNjdF8x",
        "invoice_pdf": "https://pay.stripe.example.com/invoice/acct_1/test_YWNjdF8x/pdf",
        "last_finalization_error": None, "latest_revision": None,
        "lines": {"object": "list", "data": [stripe_line(i) for i in range(3)],
                  "has_more": False, "total_count": 3,
                  "url": "/v1/invoices/in_1NvQ2aKZ0dZRqLEK/lines"},
        "livemode": False, "metadata": {"order": "A-1042"}, "next_payment_attempt": None,
        "number": "ACME-0042", "on_behalf_of": None, "paid": True, "paid_out_of_band": False,
        "payment_intent": "pi_3NvQ2b", "payment_settings": {
            "default_mandate": None, "payment_method_options": None,
            "payment_method_types": None},
        "period_end": 1774400000, "period_start": 1771800000,
        "post_payment_credit_notes_amount": 0, "pre_payment_credit_notes_amount": 0,
        "quote": None, "receipt_number": None, "rendering": None,
        "starting_balance": 0, "statement_descriptor": None, "status": "paid",
        "status_transitions": {"finalized_at": 1774400101, "marked_uncollectible_at": None,
                               "paid_at": 1774400102, "voided_at": None},
        "subscription": "sub_1NvABC", "subtotal": 5997, "subtotal_excluding_tax": 5997,
        "tax": None, "test_clock": None, "total": 5997, "total_discount_amounts": [],
        "total_excluding_tax": 5997, "total_tax_amounts": [], "transfer_data": None,
        "webhooks_delivered_at": None,
    }},
    "livemode": False, "pending_webhooks": 1,
    "request": {"id": None, "idempotency_key": None}, "type": "invoice.paid",
}
ok("webhook-stripe-invoice-paid", dumps(invoice),
   "Stripe invoice.paid event: integer amounts and epochs, ~60 nulls, empty "
   "objects and arrays, non-ASCII raw (no float, no escape)")

slack_msg = {
    "token": "XXYYZZ", "team_id": "T0001", "context_team_id": "T0001",
    "context_enterprise_id": None, "api_app_id": "A0MDYCDME",
    "event": {
        "type": "message", "channel": "C2147483705", "user": "U2147483697",
        "text": "Deploy done :tada: <@U0LAN0Z89> see <https://ci.example.com/b/42|build 42>\n"
                "```make test``` — 0 failures",
        "ts": "1774400000.000200", "event_ts": "1774400000.000200",
        "channel_type": "channel", "client_msg_id": "9e9c3f2a-6d6b-4f5e-9d2f-1a2b3c4d5e6f",
        "team": "T0001",
        "blocks": [{"type": "rich_text", "block_id": "Bx1", "elements": [
            {"type": "rich_text_section", "elements": [
                {"type": "text", "text": "Deploy done "},
                {"type": "emoji", "name": "tada", "unicode": "1f389"},
                {"type": "user", "user_id": "U0LAN0Z89"},
                {"type": "link", "url": "https://ci.example.com/b/42", "text": "build 42"}]},
            {"type": "rich_text_preformatted", "elements": [
                {"type": "text", "text": "make test"}], "border": 0}]}],
    },
    "type": "event_callback", "event_id": "Ev0PV52K21", "event_time": 1774400000,
    "authorizations": [{"enterprise_id": None, "team_id": "T0001", "user_id": "U0LAN0Z89",
                        "is_bot": True, "is_enterprise_install": False}],
    "is_ext_shared_channel": False, "event_context": "4-eyJldCI6Im1lc3NhZ2UifQ",
}
ok("webhook-slack-event-message", dumps(slack_msg, ascii_only=True),
   "Slack Events API message: rich_text blocks, ts as strings, \\u escapes "
   "for non-ASCII (json ensure_ascii style, \\u2014)")


def slack_block(i):
    kind = i % 4
    if kind == 0:
        return {"type": "section", "block_id": "sec%d" % i,
                "text": {"type": "mrkdwn", "text": "*Ticket #%d* %s" % (i, words(8, LOREM)),
                         "verbatim": False},
                "accessory": {"type": "button", "action_id": "ack_%d" % i,
                              "text": {"type": "plain_text", "text": "Ack", "emoji": True},
                              "value": "ticket-%d" % i, "style": "primary"}}
    if kind == 1:
        return {"type": "actions", "block_id": "act%d" % i, "elements": [
            {"type": "static_select", "action_id": "prio_%d" % i,
             "placeholder": {"type": "plain_text", "text": "Priority", "emoji": True},
             "options": [{"text": {"type": "plain_text", "text": p, "emoji": True},
                          "value": p.lower()} for p in ("Low", "Medium", "High", "Urgent")]},
            {"type": "datepicker", "action_id": "due_%d" % i, "initial_date": "2026-04-01"}]}
    if kind == 2:
        return {"type": "context", "block_id": "ctx%d" % i, "elements": [
            {"type": "image", "image_url": "https://img.example.com/u/%d.png" % i,
             "alt_text": "avatar"},
            {"type": "mrkdwn", "text": "opened by <@U%07d> · %d min ago" % (i, i % 60),
             "verbatim": False}]}
    return {"type": "divider", "block_id": "div%d" % i}


blocks = [slack_block(i) for i in range(150)]
actions = {
    "type": "block_actions",
    "user": {"id": "U0CA5", "username": "amy.mcgee", "name": "amy.mcgee", "team_id": "T0001"},
    "api_app_id": "A0MDYCDME", "token": "XXYYZZ",
    "container": {"type": "message", "message_ts": "1774400000.000300",
                  "channel_id": "C2147483705", "is_ephemeral": False},
    "trigger_id": "1234567890123.1234567890123.abcdef01234567890abcdef012345678",
    "team": {"id": "T0001", "domain": "acme"}, "enterprise": None,
    "is_enterprise_install": False,
    "channel": {"id": "C2147483705", "name": "ops"},
    "message": {"type": "message", "subtype": "bot_message", "text": "Open tickets",
                "ts": "1774400000.000300", "bot_id": "B0AB1", "blocks": blocks},
    "state": {"values": {"act%d" % i: {"prio_%d" % i: {"type": "static_select",
                                                       "selected_option": None}}
                         for i in range(1, 150, 4)}},
    "response_url": "https://hooks.slack.example.com/actions/T0001/1234/abcd",
    "actions": [{"action_id": "ack_8", "block_id": "sec8",
                 "text": {"type": "plain_text", "text": "Ack", "emoji": True},
                 "value": "ticket-8", "style": "primary", "type": "button",
                 "action_ts": "1774400017.123456"}],
}
ok("webhook-slack-block-actions", dumps(actions, compact=True),
   "Slack block_actions interactivity payload, compact (one line, as "
   "delivered), 150 blocks (~55 KB)")


def money(x):
    return "%.2f" % x


def shop_line(i):
    price = [19.99, 4.5, 129.0, 0.99][i % 4]
    return {
        "id": 866550311766439000 + i * 1020, "admin_graphql_api_id":
            "gid://shopify/LineItem/%d" % (866550311766439020 + i * 1020),
        "fulfillable_quantity": 1, "fulfillment_service": "manual",
        "fulfillment_status": None, "gift_card": False, "grams": 567 * (i + 1),
        "name": ["Café crème – 250 g", "Thé vert 緑茶", "Kaffeemühle „Classic“",
                 "Sticker 🐝"][i % 4],
        "price": money(price), "price_set": {
            "shop_money": {"amount": money(price), "currency_code": "EUR"},
            "presentment_money": {"amount": money(price), "currency_code": "EUR"}},
        "product_exists": True, "product_id": 788032119674292900 + i,
        "properties": [], "quantity": 1 + i % 2, "requires_shipping": True,
        "sku": "SKU-%04d" % i, "taxable": True, "title": "Item %d" % i,
        "total_discount": "0.00", "variant_id": 642667041472713900 + i,
        "variant_inventory_management": "shopify", "variant_title": None,
        "vendor": None, "tax_lines": [{"channel_liable": None, "price": money(price * 0.19),
                                       "rate": 0.19, "title": "MwSt."}],
        "duties": [], "discount_allocations": [],
    }


addr = {"first_name": "Jörg", "address1": "Hauptstraße 1", "phone": "+49 221 000000",
        "city": "Köln", "zip": "50667", "province": None, "country": "Germany",
        "last_name": "Groß", "address2": None, "company": None, "latitude": 50.941357,
        "longitude": 6.958307, "name": "Jörg Groß", "country_code": "DE",
        "province_code": None}
order = {
    "id": 820982911946154508, "admin_graphql_api_id": "gid://shopify/Order/820982911946154508",
    "app_id": None, "browser_ip": None, "buyer_accepts_marketing": True,
    "cancel_reason": None, "cancelled_at": None, "cart_token": None, "checkout_id": None,
    "checkout_token": None, "closed_at": None, "confirmed": False, "contact_email": None,
    "created_at": "2026-03-21T12:30:00+01:00", "currency": "EUR",
    "current_subtotal_price": "199.45", "current_total_discounts": "0.00",
    "current_total_price": "209.45", "current_total_tax": "31.85",
    "customer_locale": "de", "device_id": None, "discount_codes": [],
    "email": "jorg@example.com", "estimated_taxes": False, "financial_status": "voided",
    "fulfillment_status": "pending", "landing_site": None, "location_id": None,
    "name": "#9999", "note": "Bitte klingeln 🔔 — danke!", "note_attributes": [],
    "number": 234, "order_number": 1234, "order_status_url":
        "https://shop.example.com/548380009/orders/123456abcd/authenticate?key=abcdefg",
    "payment_gateway_names": ["visa", "bogus"], "phone": None, "presentment_currency": "EUR",
    "processed_at": None, "reference": None, "referring_site": None, "source_name": "web",
    "subtotal_price": "189.45", "tags": "tag1, tag2", "tax_lines": [
        {"price": "31.85", "rate": 0.19, "title": "MwSt.", "channel_liable": None}],
    "taxes_included": True, "test": True, "token": hexid(32), "total_discounts": "20.00",
    "total_line_items_price": "199.45", "total_outstanding": "209.45",
    "total_price": "209.45", "total_shipping_price_set": {
        "shop_money": {"amount": "10.00", "currency_code": "EUR"},
        "presentment_money": {"amount": "10.00", "currency_code": "EUR"}},
    "total_tax": "31.85", "total_tip_received": "0.00", "total_weight": 0,
    "updated_at": "2026-03-21T12:30:00+01:00", "user_id": None,
    "billing_address": addr, "shipping_address": addr,
    "customer": {"id": 115310627314723954, "email": "jorg@example.com",
                 "accepts_marketing": False, "created_at": None, "updated_at": None,
                 "first_name": "Jörg", "last_name": "Groß", "state": "disabled",
                 "note": None, "verified_email": True, "multipass_identifier": None,
                 "tax_exempt": False, "phone": None, "currency": "EUR",
                 "tax_exemptions": [], "admin_graphql_api_id":
                     "gid://shopify/Customer/115310627314723954",
                 "default_address": dict(addr, id=715243470612851245, customer_id=115310627314723954,
                                         default=True)},
    "discount_applications": [], "fulfillments": [],
    "line_items": [shop_line(i) for i in range(6)], "payment_terms": None,
    "refunds": [], "shipping_lines": [{
        "id": 271878346596884015, "carrier_identifier": None, "code": None,
        "discounted_price": "10.00", "price": "10.00", "source": "shopify",
        "title": "Generic Shipping", "tax_lines": [], "discount_allocations": []}],
}
ok("webhook-shopify-order-create", dumps(order, ascii_only=True),
   "Shopify orders/create: ids beyond 2^53 as numbers (some already rounded "
   "by JavaScript, one exact next to its gid string), money as strings, tax "
   "rate and coordinates as floats, non-ASCII as \\u escapes with a "
   "surrogate pair, many nulls")

alerts = []
for i in range(12):
    alerts.append({
        "status": "firing" if i % 3 else "resolved",
        "labels": {"alertname": ["HighLatency", "DiskFull", "TargetDown"][i % 3],
                   "instance": "node-%02d.example.com:9100" % i, "job": "node",
                   "severity": ["warning", "critical"][i % 2], "team": "ops"},
        "annotations": {"summary": "Instance node-%02d is in trouble" % i,
                        "description": "p99 latency above 500 ms for 10 minutes",
                        "runbook_url": "https://runbooks.example.com/%d" % i},
        "startsAt": iso(20, 3, i, 0), "endsAt": "0001-01-01T00:00:00Z",
        "generatorURL": "http://prometheus.example.com:9090/graph?g0.expr=up+%3D%3D+0",
        "fingerprint": hexid(16),
    })
am = {"receiver": "ops-webhook", "status": "firing", "alerts": alerts,
      "groupLabels": {"alertname": "HighLatency"},
      "commonLabels": {"job": "node", "team": "ops"}, "commonAnnotations": {},
      "externalURL": "http://alertmanager.example.com:9093", "version": "4",
      "groupKey": "{}:{alertname=\"HighLatency\"}", "truncatedAlerts": 0}
am["groupKey"] = "{}:{alertname=HighLatency}"  # no escape: a byte-exact candidate
ok("webhook-alertmanager-firing", dumps(am, compact=True),
   "Alertmanager webhook v4 with 12 alerts, compact, no float and no escape "
   "(must come back byte for byte)")

review = {
    "apiVersion": "admission.k8s.io/v1", "kind": "AdmissionReview",
    "request": {
        "uid": "705ab4f5-6393-11e8-b7cc-42010a800002",
        "kind": {"group": "", "version": "v1", "kind": "Pod"},
        "resource": {"group": "", "version": "v1", "resource": "pods"},
        "requestKind": {"group": "", "version": "v1", "kind": "Pod"},
        "requestResource": {"group": "", "version": "v1", "resource": "pods"},
        "name": "web-7d4b9c", "namespace": "shop", "operation": "CREATE",
        "userInfo": {"username": "system:serviceaccount:kube-system:replicaset-controller",
                     "uid": "8e5a6d2c-1c1f-4a43-9a35-1d2a3b4c5d6e",
                     "groups": ["system:serviceaccounts", "system:authenticated"]},
        "object": {"apiVersion": "v1", "kind": "Pod", "metadata": {
            "name": "web-7d4b9c", "namespace": "shop",
            "labels": {"app": "web", "pod-template-hash": "7d4b9c"},
            "ownerReferences": [{"apiVersion": "apps/v1", "kind": "ReplicaSet",
                                 "name": "web-7d4b9c", "uid": "c0ffee00-0000-4000-8000-000000000001",
                                 "controller": True, "blockOwnerDeletion": True}]},
            "spec": {"containers": [{
                "name": "web", "image": "registry.example.com/web:1.4.2",
                "ports": [{"containerPort": 8080, "protocol": "TCP"}],
                "resources": {"limits": {"cpu": "500m", "memory": "256Mi"},
                              "requests": {"cpu": "100m", "memory": "128Mi"}},
                "securityContext": {"privileged": True, "capabilities": {
                    "add": ["NET_ADMIN"], "drop": ["ALL"]},
                    "seLinuxOptions": {"level": "s0:c123,c456"}},
                "volumeMounts": [{"name": "kube-api-access", "readOnly": True,
                                  "mountPath": "/var/run/secrets/kubernetes.io/serviceaccount"}],
                "env": [{"name": "PORT", "value": "8080"}]}],
                "volumes": [{"name": "kube-api-access", "projected": {
                    "defaultMode": 420, "sources": [
                        {"serviceAccountToken": {"expirationSeconds": 3607, "path": "token"}},
                        {"configMap": {"name": "kube-root-ca.crt", "items": [
                            {"key": "ca.crt", "path": "ca.crt"}]}}]}}],
                "restartPolicy": "Always", "terminationGracePeriodSeconds": 30,
                "dnsPolicy": "ClusterFirst", "serviceAccountName": "default",
                "priority": 0, "enableServiceLinks": True,
                "tolerations": [{"key": "node.kubernetes.io/not-ready", "operator": "Exists",
                                 "effect": "NoExecute", "tolerationSeconds": 300}]},
            "status": {}},
        "oldObject": None, "dryRun": False,
        "options": {"apiVersion": "meta.k8s.io/v1", "kind": "CreateOptions"},
    },
}
ok("webhook-k8s-admission-review", dumps(review),
   "Kubernetes AdmissionReview for a Pod: nesting 11 deep, no float and no escape")

# ---- deliberate negative cases -------------------------------------------

bad("number-1E400", '{"x": 1E400}\n', "a number beyond the double range: refused, not turned into infinity")
bad("number-neg-1e999", "[-1e999]\n", "the same, negative")
bad("number-leading-zero", '{"id": 0123}\n', "a leading zero (RFC 8259 forbids it)")
bad("number-bare-fraction", "[.5]\n", "a fraction without its integer part")
bad("number-plus-sign", "[+1]\n", "a leading plus sign")
bad("string-nul-escape", '{"s": "a\\u0000b"}\n', "\\u0000 (a C string would be cut there)")
bad("string-lone-surrogate", '{"s": "\\ud83d"}\n', "a high surrogate escape without its pair")
bad("string-raw-tab", '{"s": "a\tb"}\n', "a raw control character inside a string")
bad("string-invalid-utf8", b'{"s": "\xc3\x28"}\n'.decode("latin-1"), "invalid UTF-8 bytes")
bad("trailing-comma", '{"a": 1,}\n', "a trailing comma")
bad("two-values", '{"a": 1} {"b": 2}\n', "two values in one body")
bad("empty", "", "an empty body")
bad("nesting-1001", "[" * 1001 + "]" * 1001 + "\n", "1001 levels: one past the nesting limit")


def write(folder, files, title, intro):
    os.makedirs(folder, exist_ok=True)
    for f in os.listdir(folder):
        if f.endswith(".json"):
            os.unlink(os.path.join(folder, f))
    lines = ["# " + title, "", intro, "",
             "Written by `tests/data/make_payloads.py` (edit it and re-run it from the "
             "repository root; do not edit these files by hand).", "",
             "| file | bytes | exercises |", "|---|---:|---|"]
    for name in sorted(files):
        text, what = files[name]
        data = text.encode("latin-1") if name == "string-invalid-utf8" else text.encode("utf-8")
        with open(os.path.join(folder, name + ".json"), "wb") as f:
            f.write(data)
        lines.append("| `%s.json` | %d | %s |" % (name, len(data), what.replace("|", "\\|")))
    with open(os.path.join(folder, "README.md"), "w", encoding="utf-8") as f:
        f.write("\n".join(lines) + "\n")


for name, (text, _) in ok_files.items():
    json.loads(text)  # every file of the corpus is valid JSON (Python's view)
write(OK_DIR, ok_files, "hookd's own payload corpus",
      "Valid JSON bodies, invented for hookd's tests: every file must survive parse -> "
      "print -> parse with the same values, directly (tests/unit/test_json.c) and "
      "through the daemon's sync, async and chained hooks "
      "(tests/integration/test_payloads.c).")
write(BAD_DIR, bad_files, "Deliberately invalid bodies",
      "Each must be refused by hookd's strict parser (json_parse) and answered 400 by "
      "the daemon.")
total = sum(len(t.encode("utf-8")) for t, _ in ok_files.values())
print("%d valid files (%d bytes), %d invalid" % (len(ok_files), total, len(bad_files)),
      file=sys.stderr)
