"""Synthetic users and what their answers can tell: users and label models, populations,
the firewall for hidden knowledge, optimal values (regret labels), question types and the
Bayes ceiling."""
