"""Errors meant for people: what is wrong and what to do about it."""


class UserError(Exception):
    """A problem the user can fix (bad input, missing model, bad flow).

    The CLI prints it as one line (plus the hint) and exits non-zero, without a traceback.
    """

    def __init__(self, message: str, hint: str = "") -> None:
        super().__init__(message)
        self.message = message
        self.hint = hint

    def __str__(self) -> str:
        return f"{self.message} ({self.hint})" if self.hint else self.message
