"""The PayPay-style approval page a `redirect_to_url` next action points at.

GET shows the amount with Approve / Reject buttons (Japanese and English); the buttons POST
to `/approve` or `/reject`, which settle the PaymentIntent and 303-redirect the browser to
the merchant's return_url with `payment_intent`, `payment_intent_client_secret` and
`redirect_status`, as Stripe does after a redirect.
"""

from __future__ import annotations

from html import escape

from gateway.sandbox.context import RequestContext
from gateway.sandbox.engine import Sandbox
from gateway.sandbox.errors import StripeApiError
from gateway.sandbox.http import Request, Response, html_response, redirect
from gateway.sandbox.ids import new_request_id
from gateway.sandbox.payment_intents import RedirectNotPending, complete_redirect
from gateway.sandbox.records import PaymentIntentRecord

_PAGE = """<!doctype html>
<html lang="ja">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>PayPay（サンドボックス） / PayPay (sandbox)</title>
<style>
body {{ font-family: system-ui, sans-serif; max-width: 28rem; margin: 2rem auto; padding: 0 1rem; }}
.amount {{ font-size: 2rem; font-weight: bold; }}
form {{ display: inline-block; margin-right: .5rem; }}
button {{ font-size: 1.1rem; padding: .6rem 1.2rem; }}
.approve {{ background: #e60033; color: white; border: 0; }}
</style>
</head>
<body>
<h1>PayPay（テスト環境） / PayPay (test)</h1>
<p>この支払いを承認しますか？ / Approve this payment?</p>
<p class="amount" data-testid="amount">¥{amount}</p>
<p>{description}</p>
<p><small>{pi_id}</small></p>
<form method="post" action="/sandbox/{method}/{pi_id}/approve">
<button class="approve" type="submit" name="decision" value="approve">承認する / Approve</button>
</form>
<form method="post" action="/sandbox/{method}/{pi_id}/reject">
<button type="submit" name="decision" value="reject">拒否する / Reject</button>
</form>
</body>
</html>
"""

_GONE = """<!doctype html>
<html lang="ja"><head><meta charset="utf-8"><title>PayPay（サンドボックス）</title></head>
<body><h1>この支払いは承認待ちではありません / This payment is not awaiting approval</h1>
<p data-code="{code}">{message}</p></body></html>
"""


def show_page(sb: Sandbox, method: str, pi_id: str) -> Response:
    with sb.lock:
        pi = sb.store.get(pi_id, PaymentIntentRecord)
        if pi is None:
            return _gone(404, "redirect_unknown_payment_intent", f"No such payment_intent: {pi_id}")
        if pi.status != "requires_action":
            return _gone(409, RedirectNotPending.code, f"PaymentIntent {pi_id} has status {pi.status}.")
        html = _PAGE.format(
            amount=f"{pi.amount:,}",
            description=escape(pi.description or ""),
            pi_id=escape(pi.id),
            method=escape(method),
        )
    return html_response(200, html)


def decide(sb: Sandbox, request: Request, pi_id: str, approved: bool) -> Response:
    ctx = RequestContext(new_request_id(), None, request.base_url)
    try:
        with sb.lock:
            _, location = complete_redirect(sb, pi_id, approved, ctx)
    except RedirectNotPending as refused:
        return _gone(409, RedirectNotPending.code, str(refused))
    except StripeApiError as error:
        return _gone(error.status, error.code or "redirect_failed", error.message)
    return redirect(location)


def _gone(status: int, code: str, message: str) -> Response:
    return html_response(status, _GONE.format(code=escape(code), message=escape(message)))
