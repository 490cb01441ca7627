# A valid ISF of about N bytes for host/bench/libs/run.sh: the recorded 6.12 layout (renamed to
# another producer) plus filler structs of 40 pointer members, the shape of a whole kernel's ISF.
#   python3 host/bench/libs/isf.py BYTES OUT
import json,sys
target=int(sys.argv[1]); out=sys.argv[2]
d=json.load(open(__import__('os').path.join(__import__('os').path.dirname(__file__), '../../../Tests/KscopeLayoutTests/Recorded/6.12.117+deb12-cloud-amd64.json')))
d['metadata']['producer']={'name':'dwarf2json','version':'0.8.0'}
def filler(i):
    fields={}
    for j in range(40):
        fields['member_%d'%j]={'offset':j*8,'type':{'kind':'pointer','subtype':{'kind':'struct','name':'filler_%d'%(i+1)}}}
    return {'kind':'struct','size':320,'fields':fields}
base=len(json.dumps(d,indent=1))
d['user_types']['filler_0']=filler(0)
per=len(json.dumps(d,indent=1))-base
for i in range(1,max(1,(target-base)//per)):
    d['user_types']['filler_%d'%i]=filler(i)
open(out,'w').write(json.dumps(d,indent=1))
