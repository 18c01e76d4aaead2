"""One module per ``teflon`` command."""
