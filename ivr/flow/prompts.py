"""What the machine says when the flow author did not write it, per language."""

DEFAULT_PROMPTS = {
    "en": {
        "no_input": "Sorry, I didn't hear you.",
        "no_match": "Sorry, I didn't catch that.",
        "error": "Sorry, something went wrong.",
        "did_you_mean": "Did you mean {label}? Please say yes or no.",
        "confirm_hint": "Please say yes or no, or press 1 for yes and 2 for no.",
        "retry": "Let's try again.",
        "transfer_failed": "Sorry, nobody can take your call right now. Please call again later. Goodbye.",
        "yes_no": ("yes", "no", "yeah", "correct", "that's right", "nope"),
    },
    "zh": {
        "no_input": "抱歉，我没有听到您的声音。",
        "no_match": "抱歉，我没有听清楚。",
        "error": "抱歉，系统出现了问题。",
        "did_you_mean": "您是说{label}吗？请说是或者不是。",
        "confirm_hint": "请说是或者不是，或者按1表示是，按2表示不是。",
        "retry": "我们再试一次。",
        "transfer_failed": "抱歉，目前无法为您转接人工客服，请稍后再拨。再见。",
        "yes_no": ("是", "是的", "对", "不是", "不对"),
    },
}


def defaults_for(lang: str) -> dict:
    return DEFAULT_PROMPTS.get(lang, DEFAULT_PROMPTS["en"])
