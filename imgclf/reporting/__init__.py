"""imgclf.reporting"""
