"""Words and formats of the resident pages, Japanese first with English beside it.

The language is chosen by ``?lang=ja|en`` (remembered in the ``nofu_lang`` cookie for a year),
else by that cookie, else Japanese: the notices are Japanese and most residents read them so.
``Accept-Language`` is deliberately ignored: a phone set to English in a Japanese town still
gets the page its paper notice matches, one tap from English.

Every message exists in both languages (``MESSAGES`` is checked at import); a template asks for
a message by key (``t("invoice.total")``) and gets plain text, which Jinja escapes.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import date, datetime
from typing import Final, Literal

from ledger.clock import JST, to_utc

Lang = Literal["ja", "en"]
LANGS: Final[tuple[Lang, ...]] = ("ja", "en")
DEFAULT_LANG: Final[Lang] = "ja"
COOKIE: Final = "nofu_lang"
COOKIE_MAX_AGE: Final = 365 * 24 * 3600

_MONTHS_EN = (
    "January", "February", "March", "April", "May", "June",
    "July", "August", "September", "October", "November", "December",
)  # fmt: skip

# key → (Japanese, English). Placeholders use str.format names; both sides use the same names.
MESSAGES: Final[Mapping[str, tuple[str, str]]] = {
    # frame
    "site.name": ("税・料金のお支払い", "Pay taxes and fees"),
    "lang.switch": ("English", "日本語"),
    "footer.help": (
        "ご不明な点は、納付書に記載の担当課へお問い合わせください。",
        "For questions, contact the office named on your notice.",
    ),
    "skip": ("本文へ移動", "Skip to content"),
    # invoice page
    "invoice.title": ("お支払い内容の確認", "Your payment"),
    "invoice.notice_number": ("通知書番号", "Notice number"),
    "invoice.tax": ("税目・料金", "Tax or fee"),
    "invoice.fiscal_year": ("年度", "Fiscal year"),
    "invoice.installment": ("期別", "Installment"),
    "invoice.due_date": ("納期限", "Due date"),
    "invoice.principal": ("本税・料金", "Amount billed"),
    "invoice.late_fee": ("延滞金", "Late fee"),
    "invoice.total": ("お支払い金額", "Total to pay"),
    "invoice.as_of": ("{date}にお支払いの場合", "If paid on {date}"),
    "invoice.late_fee_none": (
        "納期限内のため、延滞金はかかりません。",
        "No late fee: the due date has not passed.",
    ),
    "invoice.late_fee_small": (
        "納期限を過ぎていますが、延滞金は1,000円未満のためかかりません。",
        "The due date has passed, but the late fee is under ¥1,000 and is not charged.",
    ),
    "invoice.late_fee_explain": (
        "延滞金は、納期限の翌日からお支払いの日までの日数に応じて、地方税法の定める割合で"
        "計算しています（{days}日分）。お支払いの日が遅くなると金額が変わります。",
        "The late fee is interest at the statutory rate for each day from the day after the "
        "due date to the day you pay ({days} days). It grows if you pay later.",
    ),
    "invoice.late_fee_provisional": (
        "今年の割合はまだ公表されていないため、前年の割合で計算した見込みの金額です。",
        "This year's rate is not yet published; the amount uses last year's rate.",
    ),
    "invoice.late_fee_not_applicable": (
        "この料金には延滞金はかかりません。",
        "This fee carries no late fee.",
    ),
    "invoice.segments": ("計算の内訳", "How it is calculated"),
    "invoice.segment_row": (
        "{start}〜{end}（{days}日・年{rate}%）: {amount}",
        "{start} to {end} ({days} days at {rate}% a year): {amount}",
    ),
    "invoice.segments_note": (
        "各期間の金額の合計を100円未満切り捨てています。",
        "The sum of the periods is rounded down to ¥100.",
    ),
    "invoice.pay": ("支払う", "Pay"),
    "invoice.pay_amount": ("{amount}を支払う", "Pay {amount}"),
    "invoice.pay_note": (
        "次の画面でお支払い方法を選びます。カード情報はこのサイトには送信されません。",
        "You choose how to pay on the next screen. Card details are never sent to this site.",
    ),
    "invoice.overdue": ("納期限を過ぎています", "Past the due date"),
    # states
    "state.label": ("状態", "Status"),
    "state.unpaid": ("未納", "Unpaid"),
    "state.in_progress": ("お支払い手続き中", "Payment in progress"),
    "state.in_progress_text": (
        "この納付書のお支払いが手続き中です。別の画面や端末で手続き中の場合も、"
        "同じお支払いとして扱われ、二重に請求されることはありません。",
        "A payment for this notice is in progress. If you started it on another screen or "
        "device, it is the same payment: you will not be charged twice.",
    ),
    "state.continue": ("手続きを続ける", "Continue the payment"),
    "state.paid": ("納付済み", "Paid"),
    "state.paid_on": ("{date}に納付済みです。", "Paid on {date}."),
    "state.paid_text": (
        "お支払いを確認しました。支払完了証明をご覧いただけます。",
        "Your payment has been confirmed. You can view the proof of payment.",
    ),
    "state.view_receipt": ("支払完了証明を見る", "View the proof of payment"),
    "state.cancelled": ("取消済み", "Cancelled"),
    "state.cancelled_text": (
        "この納付書は取り消されました。お支払いの必要はありません。詳しくは担当課へお問い合わせください。",
        "This notice has been cancelled: nothing is to be paid. Contact the office for details.",
    ),
    # manual entry
    "entry.title": ("番号を入力してお支払い", "Pay by entering the numbers"),
    "entry.intro": (
        "二次元コードを読み取れない場合は、納付書に記載の通知書番号と確認番号を入力してください。",
        "If you cannot scan the code, enter the notice number and confirmation code printed on your notice.",
    ),
    "entry.notice_number": ("通知書番号（13桁）", "Notice number (13 digits)"),
    "entry.notice_number_hint": ("例: 2026-00000123-4", "e.g. 2026-00000123-4"),
    "entry.code": ("確認番号（6文字）", "Confirmation code (6 characters)"),
    "entry.code_hint": ("英数字6文字。大文字・小文字は区別しません。", "Six letters or digits, any case."),
    "entry.submit": ("次へ", "Continue"),
    "entry.no_match": (
        "通知書番号または確認番号が正しくありません。納付書をご確認のうえ、もう一度入力してください。",
        "The notice number or the confirmation code is not correct. Check your notice and try again.",
    ),
    "entry.bad_number": (
        "通知書番号の形式が正しくありません。13桁の数字を入力してください。",
        "That is not a notice number: enter its 13 digits.",
    ),
    "entry.missing": ("通知書番号と確認番号を入力してください。", "Enter both the notice number and the code."),
    "entry.locked": (
        "この通知書番号は入力の誤りが続いたため、本日は受け付けできません。"
        "納付書の二次元コードをお使いいただくか、担当課へお問い合わせください。",
        "Too many wrong codes were entered for this notice number today. Scan the code on "
        "your notice instead, or contact the office.",
    ),
    "entry.error_title": ("入力内容をご確認ください", "Please check what you entered"),
    # refusals and errors
    "refused.title": ("このURLではお支払いできません", "This link cannot be used to pay"),
    "refused.invalid": (
        "URLが正しくないか、途中で切れています。納付書の二次元コードをもう一度読み取るか、"
        "番号を入力してお支払いください。",
        "The link is not valid or was cut short. Scan the code on your notice again, or enter "
        "the numbers printed on it.",
    ),
    "refused.revoked": (
        "この二次元コードは無効になりました。新しく届いた納付書の二次元コードをお使いください。",
        "This code is no longer valid. Use the code on the newest notice you received.",
    ),
    "refused.manual_link": ("番号を入力してお支払い", "Enter the numbers instead"),
    "limited.title": ("しばらくお待ちください", "Please wait a while"),
    "limited.text": (
        "短い時間に多くの操作がありました。しばらく時間をおいてから、もう一度お試しください。",
        "There were too many attempts in a short time. Please wait and try again later.",
    ),
    "limited.retry_after": ("約{minutes}分後にお試しください。", "Try again in about {minutes} minutes."),
    "csrf.title": ("画面の有効期限が切れました", "This page has expired"),
    "csrf.text": (
        "安全のため、操作を受け付けられませんでした。前の画面を開き直して、もう一度お試しください。",
        "For your security the request was not accepted. Reopen the previous page and try again.",
    ),
    "notfound.title": ("ページが見つかりません", "Page not found"),
    "notfound.text": ("お探しのページは見つかりませんでした。", "The page you asked for does not exist."),
    "error.title": ("ただいま処理できません", "Something went wrong"),
    "error.text": (
        "申し訳ありません。処理中に問題が起きました。二重に請求されることはありません。"
        "しばらくしてからもう一度お試しください。",
        "Sorry, something went wrong on our side. You will not be charged twice. Please try again later.",
    ),
    "error.reference": ("お問い合わせ番号: {reference}", "Reference: {reference}"),
    "bad_request.title": ("リクエストが正しくありません", "The request is not valid"),
    "bad_request.text": ("入力内容をご確認ください。", "Please check what you sent."),
    "back.invoice": ("お支払い内容に戻る", "Back to your payment"),
    "back.start": ("はじめに戻る", "Start again"),
    # paying
    "attempt.title": ("お支払い方法", "How to pay"),
    "attempt.amount": ("お支払い金額", "Amount"),
    "attempt.sandbox_note": (
        "テスト環境です。実際の請求は発生しません。試したい結果を選んでください。",
        "Test environment: no real money moves. Choose the outcome to try.",
    ),
    "attempt.method.card_success": ("テストカードで支払う（成功）", "Pay with a test card (succeeds)"),
    "attempt.method.card_declined": ("テストカード（拒否される）", "Test card (declined)"),
    "attempt.method.insufficient_funds": ("テストカード（残高不足）", "Test card (insufficient funds)"),
    "attempt.method.expired_card": ("テストカード（有効期限切れ）", "Test card (expired)"),
    "attempt.method.paypay": ("PayPay（承認画面へ）", "PayPay (approval page)"),
    "attempt.stripe_submit": ("支払う", "Pay"),
    "attempt.stripe_loading": ("お支払い方法を読み込んでいます…", "Loading payment methods…"),
    "attempt.stripe_failed": (
        "お支払い画面を読み込めませんでした。通信環境をご確認のうえ、再読み込みしてください。",
        "The payment form could not be loaded. Check your connection and reload the page.",
    ),
    "attempt.processing": (
        "お支払いを確認しています。この画面は自動で更新されます。",
        "We are confirming your payment. This page refreshes by itself.",
    ),
    "attempt.requires_action": (
        "お支払いの承認をお待ちしています。決済アプリなどで承認してください。",
        "Waiting for you to approve the payment, for example in your payment app.",
    ),
    "attempt.open_redirect": ("承認画面を開く", "Open the approval page"),
    "attempt.refresh": ("最新の状態を見る", "Check again"),
    "attempt.failed_title": ("お支払いできませんでした", "The payment did not go through"),
    "attempt.try_again": ("もう一度お支払い手続きをする", "Try again"),
    "attempt.canceled": ("お支払いは中止されました。", "The payment was cancelled."),
    "attempt.expired": (
        "お支払いの有効時間が過ぎたため、手続きを終了しました。",
        "The payment was not completed in time and has ended.",
    ),
    "attempt.amount_changed": (
        "お支払い金額が変わりました（延滞金の日数が変わったためです）。金額をご確認ください。",
        "The amount has changed (the late fee counts one more day). Please check it again.",
    ),
    "attempt.previous_failed": ("前回のお支払いはできませんでした: {reason}", "Your last payment did not go through: {reason}"),
    "attempt.unavailable": (
        "現在オンラインでのお支払いを受け付けていません。納付書で金融機関・コンビニエンスストアの窓口からお支払いください。",
        "Online payment is not available right now. Please pay with the paper notice at a bank or convenience store.",
    ),
    "attempt.too_small": (
        "50円未満の金額はオンラインでお支払いいただけません。納付書で窓口からお支払いください。",
        "Amounts under ¥50 cannot be paid online. Please pay with the paper notice at a counter.",
    ),
    "attempt.provider_error_title": ("お支払いを開始できませんでした", "The payment could not be started"),
    "attempt.test_heading": ("テスト用のお支払い方法", "Test payment methods"),
    "attempt.card_heading": ("カード・ウォレット", "Card or wallet"),
    "attempt.paypay_note": (
        "PayPayを選ぶと承認画面への案内が表示されます。承認すると、この画面に戻ります。",
        "PayPay shows a link to its approval page; after approving you come back here.",
    ),
    "attempt.expires": ("{time}までにお手続きください。", "Please complete this by {time}."),
    # completion and receipt
    "done.title": ("お支払いが完了しました", "Payment complete"),
    "done.text": (
        "お支払いを確認しました。支払完了証明は印刷または保存できます。",
        "Your payment is confirmed. You can print or save the proof of payment.",
    ),
    "receipt.title": ("支払完了証明", "Proof of payment"),
    "receipt.lead": (
        "{municipality}は、次のとおりお支払いを受け付けたことを証明します。",
        "{municipality} confirms that it received the payment below.",
    ),
    "receipt.number": ("証明番号", "Receipt number"),
    "receipt.paid_at": ("お支払い日時", "Paid at"),
    "receipt.amount": ("お支払い金額", "Amount paid"),
    "receipt.breakdown": ("内訳", "Breakdown"),
    "receipt.principal": ("本税・料金", "Amount billed"),
    "receipt.late_fee": ("延滞金", "Late fee"),
    "receipt.provider_ref": ("決済番号", "Payment reference"),
    "receipt.code": ("照合番号", "Verification code"),
    "receipt.verify_note": (
        "この証明が本物かどうかは、次のURLで証明番号と照合番号を入力して確認できます: {url}",
        "Anyone can check this proof is genuine at {url} with the receipt number and verification code.",
    ),
    "receipt.print": ("印刷する", "Print"),
    "receipt.note": (
        "この証明は、決済事業者からの支払完了の通知に基づいて発行しています。",
        "This proof is issued on the payment provider's confirmation of the payment.",
    ),
    "receipt.overpayment": (
        "このお支払いは、すでに納付済みの納付書に対するものでした。過誤納金として、後日還付（返金）の手続きをいたします。",
        "This notice was already paid when this payment arrived. The money will be refunded to you.",
    ),
    "receipt.invoice": ("納付書", "Notice"),
    "receipt.kind_payment": ("納付", "Payment"),
    "done.receipt_link": ("支払完了証明を表示", "Show the proof of payment"),
    "done.back": ("お支払い内容を見る", "View the notice"),
    "receipt.not_yet": (
        "お支払いの完了はまだ確認できていません。確認でき次第、支払完了証明を発行します。",
        "The payment is not confirmed yet. The proof of payment is issued once it is.",
    ),
    "verify.title": ("支払完了証明の確認", "Check a proof of payment"),
    "verify.intro": (
        "支払完了証明に記載の証明番号と照合番号を入力すると、本物かどうかを確認できます。",
        "Enter the receipt number and verification code printed on a proof of payment to check it.",
    ),
    "verify.number": ("証明番号", "Receipt number"),
    "verify.code": ("照合番号", "Verification code"),
    "verify.submit": ("確認する", "Check"),
    "verify.genuine": (
        "この支払完了証明は本物です。内容が次のとおりであることをご確認ください。",
        "This proof of payment is genuine. Check that it says the following.",
    ),
    "verify.not_genuine": (
        "この番号の組み合わせに一致する支払完了証明はありません。",
        "No proof of payment matches this number and code.",
    ),
}


def _check_messages() -> None:
    """Every message has both languages with the same placeholders: a mismatch is a bug found
    at import, not a KeyError on a resident's phone."""
    import string

    formatter = string.Formatter()
    for key, (ja, en) in MESSAGES.items():
        if not ja or not en:
            raise ValueError(f"message {key!r} lacks a language")
        names_ja = {name for _, name, _, _ in formatter.parse(ja) if name}
        names_en = {name for _, name, _, _ in formatter.parse(en) if name}
        if names_ja != names_en:
            raise ValueError(f"message {key!r} has different placeholders: {names_ja} vs {names_en}")


_check_messages()


def choose_lang(query_value: str | None, cookie_value: str | None) -> tuple[Lang, bool]:
    """The page language and whether to (re)set the cookie: the query wins, then the cookie."""
    if query_value in LANGS:
        return query_value, query_value != cookie_value
    if cookie_value in LANGS:
        return cookie_value, False
    return DEFAULT_LANG, False


@dataclass(frozen=True)
class Translator:
    """Messages and formats in one language. Call it with a key: ``t("invoice.total")``."""

    lang: Lang

    def __call__(self, key: str, /, **values: object) -> str:
        text = MESSAGES[key][0 if self.lang == "ja" else 1]
        return text.format(**values) if values else text

    def yen(self, amount: int) -> str:
        """``12,300円`` / ``¥12,300``: integer yen only (a float here is a bug upstream)."""
        if isinstance(amount, bool) or not isinstance(amount, int):
            raise TypeError("yen amounts are int")
        return f"{amount:,}円" if self.lang == "ja" else f"¥{amount:,}"

    def date(self, day: date) -> str:
        if self.lang == "ja":
            return f"{day.year}年{day.month}月{day.day}日"
        return f"{day.day} {_MONTHS_EN[day.month - 1]} {day.year}"

    def date_jst(self, moment: datetime) -> str:
        """The JST calendar date of an instant (a payment at 23:30 UTC is the next day here)."""
        return self.date(to_utc(moment).astimezone(JST).date())

    def datetime_jst(self, moment: datetime) -> str:
        """An instant in Japan time, to the minute, saying so (a receipt may be read abroad)."""
        local = to_utc(moment).astimezone(JST)
        if self.lang == "ja":
            return f"{self.date(local.date())} {local:%H:%M}（日本時間）"
        return f"{self.date(local.date())}, {local:%H:%M} (Japan time, JST)"

    def fiscal_year(self, year: int) -> str:
        return f"{year}年度" if self.lang == "ja" else f"FY{year}"

    def installment(self, period: int) -> str:
        return f"第{period}期" if self.lang == "ja" else f"Installment {period}"
