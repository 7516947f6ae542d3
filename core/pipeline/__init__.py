"""The side-effect pipeline's machinery: how an effect is declared (handlers), how it runs at
most once to completion per event (runner), and what happens to messages that gave up."""
