"""English words in a Mandarin sentence, said in Mandarin: 我要cancel这个order -> 我要取消这个订单.

City callers mix English service words into Mandarin (Hong Kong, Singapore, Malaysia, Shanghai offices: "帮我check一下
那个order", "top up一下 100 块", "这个bill我看不懂多charge了"), and a Mandarin recognizer writes them in Latin letters.
A Mandarin step's phrases and examples are Chinese, so those words count for nothing with the sound-alike matcher.
`to_mandarin` puts the common customer-service words (orders, parcels, refunds, bills, plans, top-ups, SIM cards,
agents, yes and no) into Mandarin, and drops the Singapore/Malaysia sentence particles (lah, leh, lor). Only a
sentence that holds Chinese characters is touched: an English sentence on a Mandarin step stays English, which the
matcher rejects as another language (ivr.flow.foreign). A word not in the glossary stays as it was.

A hand-written glossary: the offline translators on the registries (argos-translate, the Marian models) download
their models and translate whole sentences, not the loanwords of a mixed one; these few dozen service words are
what callers mix in. Pure and cheap: a regular expression per sentence.
"""

import re
from functools import lru_cache

# English word or phrase (lower case, as a recognizer writes it) -> Mandarin. Phrases before their words.
GLOSSARY = {
    "main menu": "主菜单", "customer service": "客服", "top up": "充值", "topup": "充值", "top-up": "充值",
    "sim card": "手机卡", "simcard": "手机卡", "data plan": "流量套餐", "phone bill": "话费", "credit card": "信用卡",
    "opening hours": "营业时间", "thank you": "谢谢", "bye bye": "再见", "byebye": "再见",
    "no problem": "没问题", "no worries": "没关系", "no need": "不用", "why not": "可以",
    "order": "订单", "orders": "订单", "parcel": "包裹", "package": "包裹", "delivery": "快递", "courier": "快递",
    "express": "快递", "tracking": "物流", "shipping": "发货", "shipped": "发货", "ship": "发货",
    "store": "店", "shop": "店", "open": "开门", "close": "关门", "closed": "关门",
    "refund": "退款", "return": "退货", "exchange": "换货", "cancel": "取消", "cancelled": "取消",
    "bill": "账单", "invoice": "发票", "receipt": "发票", "charge": "扣费", "charged": "扣费", "fee": "费用",
    "payment": "付款", "pay": "付款", "paid": "付款",
    "plan": "套餐", "change": "换", "upgrade": "升级", "downgrade": "降级", "recharge": "充值", "reload": "充值",
    "balance": "余额", "credit": "话费", "data": "流量", "phone": "手机", "mobile": "手机", "handphone": "手机",
    "sim": "手机卡", "signal": "信号", "network": "网络", "internet": "网", "broadband": "宽带",
    "lost": "丢了", "stolen": "被偷了", "check": "查", "agent": "人工", "operator": "人工", "human": "人工",
    "menu": "菜单", "repeat": "再说一遍", "bye": "再见", "yes": "是", "no": "不是", "ok": "好的", "okay": "好的",
    "sorry": "不好意思", "please": "请", "thanks": "谢谢", "my": "我的", "account": "账户",
}
PARTICLES = ("lah", "leh", "lor", "hor", "meh", "liao", "sia")   # Singapore / Malaysia sentence particles
_CJK = re.compile(r"[\u3400-\u9fff]")


@lru_cache(maxsize=1)
def _pattern() -> re.Pattern:
    words = sorted([*GLOSSARY, *PARTICLES], key=len, reverse=True)
    return re.compile(r"(?<![A-Za-z])(" + "|".join(re.escape(w) for w in words) + r")(?![A-Za-z])", re.IGNORECASE)


def to_mandarin(text: str) -> str:
    """`text` with the glossary's English words in Mandarin and the particles dropped, when it holds Chinese
    characters; else `text` as it was."""
    if not _CJK.search(text) or not re.search(r"[A-Za-z]", text):
        return text
    said = _pattern().sub(lambda m: GLOSSARY.get(m.group(1).lower(), ""), text)
    return re.sub(r"\s+", " ", said).strip()
