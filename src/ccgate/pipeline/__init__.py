"""The request pipeline: admission, the response cache, forwarding with failover, settlement."""
