"""Conversation tags and saved views of the conversation list: the product team's way to label and slice logs."""
