"""Where thing lives now."""


def thing() -> str:
    return "thing"
