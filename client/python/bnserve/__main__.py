"""`python3 -m bnserve` prints how to use the package."""
import bnserve

print(bnserve.__doc__)
