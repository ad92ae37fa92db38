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
        "queue_position": "You are number {position} in the queue.",
        "queue_wait": "The wait is about {minutes} minutes.",
        "queue_wait_short": "The wait is less than a minute.",
        "queue_callback_offer": "To be called back instead, press {key}.",
        "queue_callback_confirm": "We will call you back at {number}. Press 1 to confirm, or 2 to keep waiting.",
        "queue_callback_done": "Thank you. We will call you back as soon as an agent is free. Goodbye.",
        "queue_callback_no_number": "Sorry, we have no number to call you back on. Please stay on the line.",
        "queue_timeout": "Sorry, all our agents are still busy. Please call again later. Goodbye.",
        "queue_empty": "Sorry, no agent is available right now. Please call again later. Goodbye.",
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
        "queue_position": "您前面还有{ahead}位客户，您排在第{position}位。",
        "queue_wait": "预计等待时间约{minutes}分钟。",
        "queue_wait_short": "预计等待时间不到一分钟。",
        "queue_callback_offer": "如需客服稍后回电，请按{key}。",
        "queue_callback_confirm": "我们将回电到{number}。确认请按1，继续等待请按2。",
        "queue_callback_done": "谢谢，客服有空时会尽快给您回电。再见。",
        "queue_callback_no_number": "抱歉，我们没有可以回电的号码，请您继续等待。",
        "queue_timeout": "抱歉，客服仍然都在忙，请稍后再拨。再见。",
        "queue_empty": "抱歉，目前没有客服在线，请稍后再拨。再见。",
    },
}


def defaults_for(lang: str) -> dict:
    return DEFAULT_PROMPTS.get(lang, DEFAULT_PROMPTS["en"])
