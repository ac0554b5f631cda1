"""SMTP listeners, the handler that stores accepted mail, and the replies they give."""
