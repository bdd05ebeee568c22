"""Print the document (`make openapi` redirects it into openapi.json)."""

from api.openapi.document import render


def main() -> None:
    """Print the document as `openapi.json` holds it."""
    print(render(), end="")


if __name__ == "__main__":
    main()
