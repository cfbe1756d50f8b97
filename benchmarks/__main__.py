from .inprocess import main

main()
