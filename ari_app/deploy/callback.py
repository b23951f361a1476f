"""The dialplan of the callback-out context: one national number, the app's.

The app originates `Local/<number>@callback-out/n` with the number it
confirmed for the ticket in HOTLINE_CALLBACK_NUMBER; the context dials that
number over the carrier trunk only when the two agree and the number fits the
national number plan. No other context includes this one, so no phone and no
trunk can reach it; without a carrier address (or with callbacks off) it
refuses everything.
"""

from __future__ import annotations

from ari_app.config.callback import CallbackSettings

CONTEXT = "callback-out"


def number_pattern(settings: CallbackSettings) -> str:
    plan = settings.number_plan
    return f"_[{plan.first_digits}]" + "X" * (plan.length - 1)


def callback_extens(settings: CallbackSettings, trunk: str | None) -> str:
    refuse = "exten => i,1,Hangup(1)\nexten => _X.,1,Hangup(1)"
    if trunk is None:
        return "; callbacks are off here (callback.enabled, callback.carrier_address)\n" + refuse
    pattern = number_pattern(settings)
    return "\n".join([
        f'exten => {pattern},1,GotoIf($["${{HOTLINE_CALLBACK_NUMBER}}" != "${{EXTEN}}"]'
        "?refused,1)",
        f" same => n,Set(CALLERID(num)={settings.caller_id})",
        f" same => n,Dial(PJSIP/carrier/sip:${{EXTEN}}@{trunk},"
        "${HOTLINE_CALLBACK_RING})",
        ' same => n,Hangup(${IF($["${DIALSTATUS}" = "BUSY"]?17:19)})',
        "exten => refused,1,Hangup(21)",
        refuse,
    ])
